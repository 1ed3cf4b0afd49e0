"""The first page after login, a hall's today page (今日), and its terminals page (评价器)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from collector.influx import InfluxError
from console import audit, cases, figures, roster
from console.link import LinkError, Unconfirmed
from console.web.core import (
    Refused,
    blocking,
    console_of,
    db_of,
    name_field,
    posted,
    render,
    require,
    text_field,
)
from firmware import contract

HALL_LIVE_UID = "svc-hall-live"  # dashboards/boards/hall_live.py
TERMINAL_LOOKBACK = dt.timedelta(days=7)


async def index(request: Request) -> Response:
    """A manager of one hall goes straight to its today page; the others choose a hall,
    seeing each one's open and overdue cases."""
    session = require(request)
    console = console_of(request)
    halls = console.halls_of(session.user)
    if len(halls) == 1:
        return RedirectResponse(f"/hall/{halls[0]}", 303)
    today = console.today()
    db = db_of(request)
    rows = [
        {
            "site": site,
            "name": console.hall_name(site),
            "counts": cases.open_counts(db, site, today),
        }
        for site in halls
    ]
    return render(request, "index.html", rows=rows)


async def today_page(request: Request) -> Response:
    site = request.path_params["site"]
    require(request, site=site)
    console = console_of(request)
    db = db_of(request)
    now = dt.datetime.now(console.settings.zone)
    error = None
    try:
        figures_today = await blocking(
            figures.today, console.influx, site, console.settings.zone, now
        )
    except InfluxError as e:
        figures_today, error = None, f"InfluxDB 暂时无法读取，今日数字未能显示：{e}"
    unclosed = cases.Filter(sites=(site,), state="unclosed")  # every one, however many
    open_cases = [
        {**dict(c), "overdue": cases.overdue(c, now.date())}
        for c in cases.find(db, unclosed, console.settings.zone)
    ]
    open_cases.sort(key=lambda c: (c["overdue"] is None, c["id"]))
    offline = sorted(d for d in console.devices(site) if not console.link.online(site, d))
    counters = {r["device"]: r["counter"] for r in roster.counters(db, site) if r["device"]}
    names = {c.staff: c.name for c in roster.clerks(db)}
    grafana = console.settings.grafana_url
    return render(
        request,
        "today.html",
        site=site,
        hall=console.hall_name(site),
        day=now.date(),
        today=figures_today,
        error=error,
        names=names,
        open_cases=open_cases,
        overdue=sum(c["overdue"] is not None for c in open_cases),
        offline=[(d, counters.get(d)) for d in offline],
        live_url=f"{grafana}/d/{HALL_LIVE_UID}?var-site={quote(site)}" if grafana else None,
    )


async def terminals_page(request: Request) -> Response:
    site = request.path_params["site"]
    require(request, site=site)
    console = console_of(request)
    since = dt.datetime.now(dt.UTC) - TERMINAL_LOOKBACK
    error = None
    try:
        reported = await blocking(figures.terminals, console.influx, site, since)
    except InfluxError as e:
        reported, error = {}, f"InfluxDB 暂时无法读取，遥测未能显示：{e}"
    held = console.link.terminals(site)
    counters = {r["device"]: r["counter"] for r in roster.counters(db_of(request), site)}
    rows = [
        {
            "device": device,
            "counter": counters.get(device),
            "online": held[device].online if device in held else None,
            "state": held[device].state if device in held else None,
            "report": reported.get(device),
        }
        for device in sorted(console.devices(site) | set(reported))
    ]
    return render(
        request, "terminals.html", site=site, hall=console.hall_name(site), rows=rows,
        error=error, zone=console.settings.zone, sent=request.query_params.get("sent"),
    )  # fmt: skip


async def test_prompt(request: Request) -> Response:
    """A prompt with the ticket 测试, so whoever stands at the terminal sees its window open."""
    site = request.path_params["site"]
    session = require(request, site=site, roles=("manager", "admin"))
    form = await posted(request, session)
    device = name_field(form, "device", "device", "评价器")
    ticket = text_field(form, "ticket", "票号", required=False, max_chars=contract.TICKET_MAX)
    console = console_of(request)
    if device not in console.devices(site):
        raise Refused(404, f"本厅没有评价器 {device}。")
    if not console.link.online(site, device):
        raise Refused(409, f"评价器 {device} 离线，测试叫号未发出。")
    try:
        await blocking(console.link.publish_prompt, site, device, ticket or "测试")
    except Unconfirmed as e:
        raise Refused(504, f"已发出，消息服务器尚未确认（30 秒内未送达即作废）：{e}") from None
    except LinkError as e:
        raise Refused(503, f"消息服务器暂时连不上，测试未发出：{e}") from None
    audit.record(
        db_of(request), session.user.name, "test_prompt", f"{site}/{device}",
        after={"ticket": ticket or "测试"},
    )  # fmt: skip
    return RedirectResponse(f"/hall/{site}/terminals?sent={quote(device)}", 303)
