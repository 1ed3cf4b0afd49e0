"""A table as a CSV or XLSX download, written as the appraisal's export writes its files
(dashboards/export.py): CSV in UTF-8 with a byte-order mark so that Excel reads the Chinese,
no control characters, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.styles import Font

from dashboards.export import FORMULA, cell_text

Cell = str | int | float | None


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = cell_text(value)
        return "'" + text if text.startswith(FORMULA) else text
    return str(value)


def csv_bytes(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(title: str, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    sheet.append(list(headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([cell_text(v) if isinstance(v, str) else v for v in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):  # shown as written, never run as a formula
                cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
