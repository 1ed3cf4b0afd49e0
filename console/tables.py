"""A table as a CSV or XLSX download, written as the appraisal's export writes its files
(dashboards/export.py): CSV in UTF-8 with a byte-order mark so that Excel reads the Chinese,
no control characters, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell as SheetCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

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
    """Written row by row (openpyxl's write-only mode: a month of a hall's cases in a few tens
    of milliseconds, where a workbook built in memory takes seconds)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    bold = Font(bold=True)
    sheet.append([_styled(sheet, header, bold) for header in headers])
    for row in rows:
        sheet.append([_text_cell(sheet, v) if isinstance(v, str) else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _styled(sheet: WriteOnlyWorksheet, text: str, font: Font) -> SheetCell:
    cell = WriteOnlyCell(sheet, value=text)
    cell.font = font
    return cell


def _text_cell(sheet: WriteOnlyWorksheet, text: str) -> SheetCell | str:
    """Text shown as written: a cell openpyxl would take for a formula is typed as text."""
    text = cell_text(text)
    if not text.startswith("="):
        return text
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell
