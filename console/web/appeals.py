"""申诉 and 可疑评价: a manager files an appeal on a rating of their hall and reviews the
ratings the collector flagged suspect; appraisal staff decide the appeals."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from collector.influx import InfluxError
from console import appeals, figures, reviews
from console.web.cases import case_of
from console.web.core import (
    MONTH,
    Refused,
    blocking,
    blocking_db,
    console_of,
    db_of,
    name_field,
    posted,
    render,
    require,
    text_field,
    whole,
)
from dashboards.appraisal import month_bounds

MANAGERS = ("manager", "admin")


async def file_appeal(request: Request) -> Response:
    """An appeal on a case's rating, filed from the case's page."""
    case, site = case_of(request)
    session = require(request, site=site, roles=MANAGERS)
    form = await posted(request, session)
    ground = text_field(form, "ground", "申诉理由", max_chars=16)
    note = text_field(form, "note", "申诉说明", max_chars=appeals.NOTE_MAX, lines=True)
    rating = appeals.Rating(case["site"], case["device"], case["seq"])
    try:
        appeals.file(db_of(request), rating, case["staff"], ground, note, actor=session.user.name)
    except appeals.AppealError as e:
        raise Refused(409, str(e)) from None
    return RedirectResponse(f"/cases/{case['id']}", 303)


async def appeals_page(request: Request) -> Response:
    session = require(request)
    console = console_of(request)
    halls = console.halls_of(session.user)
    db = db_of(request)
    marks = ",".join("?" * len(halls))
    rows = db.execute(
        f"SELECT a.*, c.id AS case_id FROM appeal a LEFT JOIN poor_case c ON c.site = a.site"
        f" AND c.device = a.device AND c.seq = a.seq WHERE a.site IN ({marks})"
        " ORDER BY a.decision != 'pending', a.filed_at DESC LIMIT 500",
        halls,
    ).fetchall()
    return render(
        request,
        "appeals.html",
        rows=rows,
        grounds=appeals.GROUND_NAMES,
        decisions=appeals.DECISION_NAMES,
        pending_writes=appeals.pending(db),
    )


async def decide(request: Request) -> Response:
    session = require(request, roles=("appraiser",))
    form = await posted(request, session)
    appeal = whole(text_field(form, "appeal", "申诉", max_chars=20), "申诉")
    decision = text_field(form, "decision", "裁定", max_chars=16)
    note = text_field(form, "note", "裁定说明", max_chars=appeals.NOTE_MAX, lines=True)
    if decision not in ("upheld", "rejected"):
        raise Refused(400, "裁定只能是成立或驳回。")
    console = console_of(request)
    try:
        await blocking_db(
            request, appeals.decide, console.influx, appeal, decision == "upheld",
            note, actor=session.user.name,
        )  # fmt: skip
    except appeals.AppealError as e:
        raise Refused(409, str(e)) from None
    return RedirectResponse("/appeals", 303)


async def suspects_page(request: Request) -> Response:
    site = request.path_params["site"]
    require(request, site=site)
    console = console_of(request)
    month = request.query_params.get("month") or dt.datetime.now(console.settings.zone).strftime(
        "%Y-%m"
    )
    if not MONTH.fullmatch(month):
        raise Refused(400, "月份应写作 2026-12。")
    start, end = month_bounds(month, console.settings.tz)
    error = None
    try:
        found = await blocking(figures.suspect_ratings, console.influx, site, start, end)
    except InfluxError as e:
        found, error = [], f"InfluxDB 暂时无法读取：{e}"
    db = db_of(request)
    verdicts = {
        (r["device"], r["seq"]): r
        for r in db.execute("SELECT * FROM suspect_review WHERE site = ?", (site,))
    }
    return render(
        request, "suspects.html", site=site, hall=console.hall_name(site), month=month,
        rows=found, verdicts=verdicts, verdict_names=appeals.VERDICT_NAMES, error=error,
        zone=console.settings.zone,
    )  # fmt: skip


async def review(request: Request) -> Response:
    site = request.path_params["site"]
    session = require(request, site=site, roles=MANAGERS)
    form = await posted(request, session)
    device = name_field(form, "device", "device", "评价器")
    seq = whole(text_field(form, "seq", "序号", max_chars=20), "序号")
    verdict = text_field(form, "verdict", "结论", max_chars=16)
    console = console_of(request)
    rating = appeals.Rating(site, device, seq)
    try:
        await blocking_db(
            request, appeals.review_suspect, console.influx, rating, verdict,
            actor=session.user.name,
        )  # fmt: skip
    except (appeals.AppealError, reviews.ReviewRefused) as e:
        raise Refused(409, str(e)) from None
    except InfluxError as e:
        raise Refused(503, f"InfluxDB 暂时无法读取，未做更改：{e}") from None
    return RedirectResponse(f"/suspects/{site}", 303)
