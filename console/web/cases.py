"""差评处置: the register of cases (filtered, exported), one case with its steps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import cases, tables
from console.web.core import (
    MONTH,
    Refused,
    blocking,
    console_of,
    db_of,
    posted,
    render,
    require,
    text_field,
)
from firmware import contract

SHOWN = 500  # cases a register page shows; the exports hold every one the filter finds
OVERDUE_NAMES = {"callback": "回访逾期", "fix": "整改逾期", None: ""}
COLUMNS = (
    ("id", "编号"),
    ("site", "营业厅"),
    ("counter", "窗口"),
    ("staff", "工号"),
    ("device", "评价器"),
    ("seq", "序号"),
    ("pressed", "评价时间"),
    ("score", "评分"),
    ("reason", "原因"),
    ("suspect", "可疑"),
    ("state", "状态"),
    ("callback_due", "回访期限"),
    ("fix_due", "整改期限"),
    ("overdue", "逾期"),
    ("calendar_known", "法定日历"),
)


def _filter(request: Request) -> tuple[cases.Filter, dict[str, str]]:
    session = require(request)
    console = console_of(request)
    q = request.query_params
    chosen = {k: q.get(k, "").strip() for k in ("site", "staff", "state", "month")}
    if chosen["site"] and not contract.valid_name("site", chosen["site"]):
        raise Refused(400, "营业厅名称格式不对。")
    if chosen["site"] and not session.user.may_act_on(chosen["site"]):
        raise Refused(403, "这不是您管理的营业厅。")
    if chosen["staff"] and not contract.valid_name("staff", chosen["staff"]):
        raise Refused(400, "工号格式不对。")
    if chosen["state"] and chosen["state"] not in (*cases.STATES, "unclosed"):
        raise Refused(400, "没有这个状态。")
    if chosen["month"] and not MONTH.fullmatch(chosen["month"]):
        raise Refused(400, "月份应写作 2026-12。")
    halls = console.halls_of(session.user)
    sites = (chosen["site"],) if chosen["site"] else tuple(halls)
    where = cases.Filter(
        sites=sites if session.user.role == "manager" or chosen["site"] else None,
        staff=chosen["staff"] or None,
        state=chosen["state"] or None,
        month=chosen["month"] or None,
    )
    return where, chosen


def _rows(request: Request, where: cases.Filter, limit: int = -1) -> list[dict[str, Any]]:
    console = console_of(request)
    today = console.today()
    zone = console.settings.zone
    found = []
    for case in cases.find(db_of(request), where, zone, limit):
        pressed = case["pressed"]
        found.append(
            {
                **dict(case),
                "pressed": (
                    dt.datetime.fromtimestamp(pressed, zone).strftime("%Y-%m-%d %H:%M:%S")
                    if pressed is not None
                    else "（无时间）"
                ),
                "overdue": cases.overdue(case, today),
            }
        )
    return found


async def register(request: Request) -> Response:
    where, chosen = _filter(request)
    session = require(request)
    rows = _rows(request, where, SHOWN + 1)
    return render(
        request,
        "cases.html",
        rows=rows[:SHOWN],
        more=len(rows) > SHOWN,
        shown=SHOWN,
        chosen=chosen,
        halls=console_of(request).halls_of(session.user),
        states=cases.STATES,
        query=request.url.query,
    )


async def export(request: Request) -> Response:
    where, _ = _filter(request)
    kind = request.path_params["kind"]
    if kind not in ("csv", "xlsx"):
        raise Refused(404, "只能导出 CSV 或 XLSX。")
    rows = [_export_row(r) for r in _rows(request, where)]
    headers = [h for _, h in COLUMNS]
    if kind == "csv":
        body, media = tables.csv_bytes(headers, rows), "text/csv; charset=utf-8"
    else:  # off the event loop: other pages are not kept waiting for a long export
        body = await blocking(tables.xlsx_bytes, "差评处置", headers, rows)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    name = f"cases-{console_of(request).today().isoformat()}.{kind}"
    disposition = f"attachment; filename={name}"
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


def _export_row(case: dict[str, Any]) -> list[tables.Cell]:
    """A case as the export's cells, in Chinese where the page shows Chinese."""
    shown = {
        **case,
        "overdue": OVERDUE_NAMES[case["overdue"]],
        "state": cases.STATE_NAMES[case["state"]],
        "suspect": "是" if case["suspect"] else "否",
        "calendar_known": "是" if case["calendar_known"] else "否（按周一至周五）",
    }
    return [shown[k] for k, _ in COLUMNS]


def case_of(request: Request) -> tuple[dict[str, Any], str]:
    """The case the URL names, to a user logged in who may see its hall."""
    require(request)  # a stranger learns nothing, not even which cases there are
    raw = request.path_params["case_id"]
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= contract.INT_MAX:
        raise Refused(404, "没有这个案件。")
    case = cases.get(db_of(request), int(raw))
    if case is None:
        raise Refused(404, "没有这个案件。")
    require(request, site=case["site"])
    return dict(case), case["site"]


async def case_page(request: Request) -> Response:
    case, site = case_of(request)
    console = console_of(request)
    db = db_of(request)
    row = cases.get(db, int(str(case["id"])))
    assert row is not None
    appeal = db.execute(
        "SELECT * FROM appeal WHERE site = ? AND device = ? AND seq = ?",
        (site, case["device"], case["seq"]),
    ).fetchone()
    pressed = case["pressed"]
    return render(
        request,
        "case.html",
        case=case,
        hall=console.hall_name(site),
        pressed=(
            dt.datetime.fromtimestamp(float(str(pressed)), console.settings.zone).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
            if pressed is not None
            else None
        ),
        overdue=cases.overdue(row, console.today()),
        steps=cases.steps(db, int(str(case["id"]))),
        next_state=cases.STATES[cases.STATES.index(str(case["state"])) + 1]
        if case["state"] != cases.STATES[-1]
        else None,
        appeal=appeal,
    )


async def step(request: Request) -> Response:
    case, site = case_of(request)
    session = require(request, site=site, roles=("manager", "admin"))
    form = await posted(request, session)
    to = text_field(form, "to", "下一步", max_chars=16)
    note = text_field(form, "note", "处理说明", max_chars=cases.NOTE_MAX, lines=True)
    try:
        cases.advance(db_of(request), int(str(case["id"])), to, note, actor=session.user.name)
    except cases.CaseError as e:
        raise Refused(409, str(e)) from None
    return RedirectResponse(f"/cases/{case['id']}", 303)
