"""公示屏 `/wall/{site}`: the hall's screen. Every counter with its clerk (photo, name, 工号)
and this month's satisfaction as stars with the number of ratings; no login, and nothing but
those public figures (no customer, no ticket, no poor rating's detail).
`/wall/{site}?month=2026-11` shows a month's results instead (the monthly 公示): each clerk
who served in the hall that month, with their stars.

The month's figures are read from InfluxDB at most once a minute a hall (the page refreshes
itself every minute), so a screen in every hall costs InfluxDB one query a minute each.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from collector.influx import InfluxError
from console import figures, roster
from console.web.core import MONTH, Console, Refused, blocking, console_of, db_of, render
from dashboards.appraisal import month_bounds
from firmware import contract

REFRESH_S = 60
CACHED_MAX = 512  # wall figures kept: a stranger asking for every month fills no memory
_cache: dict[tuple[int, str, str], tuple[float, figures.Wall]] = {}
_cache_lock = threading.Lock()


def _month(console: Console, site: str, month: str) -> figures.Wall:
    key = (id(console), site, month)
    with _cache_lock:
        cached = _cache.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    now = dt.datetime.now(console.settings.zone)
    start, _ = month_bounds(month, console.settings.tz)
    found = figures.month_wall(console.influx, site, start, now, console.settings.min_ratings)
    with _cache_lock:
        _cache[key] = (time.monotonic() + REFRESH_S, found)
        while len(_cache) > CACHED_MAX:
            del _cache[next(iter(_cache))]
    return found


def shows(console: Console, staff: str) -> bool:
    """Whether a wall shows this clerk now: seated at a terminal of a hall, or in a month's
    results a wall asked for lately. Only such a clerk's photo is public."""
    with _cache_lock:
        walls = [w for (owner, _, _), (_, w) in _cache.items() if owner == id(console)]
    if any(staff in w.clerks for w in walls):
        return True
    return any(
        terminal.staff == staff
        for site in console.halls()
        for terminal in console.link.terminals(site).values()
    )


async def wall(request: Request) -> Response:
    site = request.path_params["site"]
    console = console_of(request)
    if not contract.valid_name("site", site) or site not in console.halls():
        raise Refused(404, "没有这个营业厅。")
    now = dt.datetime.now(console.settings.zone)
    chosen = request.query_params.get("month", "")
    if chosen and (not MONTH.fullmatch(chosen) or chosen > now.strftime("%Y-%m")):
        raise Refused(404, "月份应写作 2026-11，且不晚于本月。")
    try:
        month = await blocking(_month, console, site, chosen or now.strftime("%Y-%m"))
    except InfluxError:
        month = None  # the screen keeps its place and says nothing wrong to the customers
    db = db_of(request)
    if chosen:
        cards = [
            {"counter": None, "staff": staff, "clerk": roster.clerk(db, staff), "month": figures_of}
            for staff, figures_of in sorted(month.clerks.items() if month else [])
        ]
        title = f"{chosen[:4]} 年 {chosen[5:]} 月"
    else:
        cards, title = _counters(console, site, month), now.strftime("%Y 年 %m 月")
    return render(
        request, "wall.html", hall=console.hall_name(site), counters=cards, month=title,
        refresh_s=REFRESH_S, min_ratings=console.settings.min_ratings, user=None, session=None,
    )  # fmt: skip


def _counters(console: Console, site: str, month: figures.Wall | None) -> list[dict[str, Any]]:
    """Every counter of the hall, with the clerk its terminal has now and their month."""
    db = console.db.get()
    held = console.link.terminals(site)
    counters = []
    for row in roster.counters(db, site):
        terminal = held.get(row["device"]) if row["device"] else None
        staff = terminal.staff if terminal else None
        clerk = roster.clerk(db, staff) if staff else None
        counters.append(
            {
                "counter": row["counter"],
                "staff": staff,
                "clerk": clerk,
                "month": month.clerks.get(staff) if month and staff else None,
            }
        )
    return counters
