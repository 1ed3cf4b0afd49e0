"""The appraisal as CSV (the columns fixed by the appraisal office) or XLSX (Chinese headers).

A clerk's row over every hall has no site: its cell is empty in the CSV, and 全部营业厅 in the
XLSX, where a reader looks for a word rather than a blank. Each row says what it is (`scope`,
the row's own: `clerk` in a hall, `clerk_all` over every hall, `hall`) and a clerk's row
carries the clerk's name. Columns are only ever appended (readers take them by position):
`excluded`, the ratings upheld appeals took out, comes last.

A text cell may hold what a tools account typed (a clerk's name), so `values`, which both
files write, leaves control characters out of every text (an XLSX cannot hold most of them
at all); and text a spreadsheet would take for a formula (a leading = + - @) stays text: after
an apostrophe in the CSV, as Excel marks text typed so, and as a string cell in the XLSX,
shown as written.
"""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties

from collector.checks import CONTROL
from dashboards.appraisal import ASPECT_NAMES, REASON_NAMES, REASONS, Row

COLUMNS = (
    ("site", "营业厅"),
    ("staff", "工号"),
    ("rated", "有效评价"),
    ("satisfied", "满意"),
    ("satisfaction", "满意率"),
    ("wilson_low", "满意率下限(95%)"),
    ("rank", "排名"),
    ("poor", "差评"),
    ("skipped", "未评"),
    ("suspect", "可疑"),
    *((f"reason_{reason}", f"差评原因:{name}") for reason, name in REASON_NAMES.items()),
    # appended with the aspect mode: empty where no terminal used it
    *(
        column
        for aspect, name in ASPECT_NAMES.items()
        for column in ((f"{aspect}_rated", f"{name}:评价数"), (f"{aspect}_mean", f"{name}:平均分"))
    ),
    # appended with the clerks' names: the row's kind, and the name (empty for a hall's row)
    ("scope", "范围"),
    ("staff_name", "姓名"),
    # appended with appeals: ratings an upheld appeal took out (in none of the columns before)
    ("excluded", "申诉剔除"),
)
SHARES = ("satisfaction", "wilson_low")
MEANS = tuple(f"{aspect}_mean" for aspect in ASPECT_NAMES)
ALL_HALLS = "全部营业厅"  # the XLSX's site cell of a clerk's row over every hall
FORMULA = ("=", "+", "-", "@")  # a cell starting so is a formula to a spreadsheet

Value = str | int | float | None


def cell_text(text: str) -> str:
    """A text cell as both files write it: without control characters."""
    return CONTROL.sub("", text)


def values(row: Row) -> dict[str, Value]:
    """A row's cells by column name, text as `cell_text` makes it; None for an empty cell."""
    cells: dict[str, Value] = {
        "site": row.site,
        "staff": row.staff,
        "rated": row.rated,
        "satisfied": row.counts["satisfied"],
        "satisfaction": row.satisfaction,
        "wilson_low": row.wilson_low,
        "rank": row.rank,
        "poor": row.counts["poor"],
        "skipped": row.counts["skipped"],
        "suspect": row.counts["suspect"],
        **{f"reason_{reason}": row.reasons[reason] for reason in REASONS},
        **{f"{aspect}_rated": row.aspect_rated(aspect) for aspect in ASPECT_NAMES},
        **{f"{aspect}_mean": row.aspect_mean(aspect) for aspect in ASPECT_NAMES},
        "scope": row.scope,
        "staff_name": row.staff_name,
        "excluded": row.counts["excluded"],
    }
    return {k: cell_text(v) or None if isinstance(v, str) else v for k, v in cells.items()}


def write(rows: list[Row], path: Path) -> None:
    """Write the rows to a .csv or .xlsx file, by its suffix."""
    if path.suffix == ".csv":
        _csv(rows, path)
    elif path.suffix == ".xlsx":
        _xlsx(rows, path)
    else:
        raise ValueError(f"{path}: the export is a .csv or .xlsx file")


def _csv(rows: list[Row], path: Path) -> None:
    """UTF-8 with a byte-order mark, so that Excel opens the Chinese names right."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow([name for name, _ in COLUMNS])
        for row in rows:
            cells = values(row)
            out.writerow([_text(name, cells[name]) for name, _ in COLUMNS])


def _text(name: str, value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA) else value
    if name in SHARES:
        return f"{value:.6f}"
    if name in MEANS:
        return f"{value:.3f}"
    return str(value)


def _xlsx(rows: list[Row], path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "考核"
    sheet.append([header for _, header in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        cells = values(row)
        if row.site is None:
            cells["site"] = ALL_HALLS
        sheet.append([cells[name] for name, _ in COLUMNS])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):  # shown as written, never run as a formula
                cell.data_type = "s"
        if row.staff is None:  # a hall's row, under its clerks
            for cell in sheet[sheet.max_row]:
                cell.font = Font(bold=True)
    for i, (name, header) in enumerate(COLUMNS, 1):
        letter = get_column_letter(i)
        sheet.column_dimensions[letter].width = max(10, 2 * len(header) + 2)
        if name in SHARES or name in MEANS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = "0.00%" if name in SHARES else "0.00"
    sheet.freeze_panes = "C2"
    sheet.page_setup.orientation = "landscape"  # every column on one printed page's width
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    book.save(path)
