"""排班: the hall's counters, who each terminal has now, logging clerks in and out; the
clerk directory with photos."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import roster
from console.link import LinkError, Unconfirmed
from console.web import wall
from console.web.core import (
    Refused,
    blocking,
    console_of,
    db_of,
    name_field,
    posted,
    render,
    require,
    session_of,
    text_field,
)


async def roster_page(request: Request) -> Response:
    site = request.path_params["site"]
    require(request, site=site)
    console = console_of(request)
    db = db_of(request)
    terminals = console.link.terminals(site)
    rows = []
    for counter in roster.counters(db, site):
        terminal = terminals.get(counter["device"]) if counter["device"] else None
        staff = terminal.staff if terminal else None
        rows.append(
            {
                "counter": counter["counter"],
                "device": counter["device"],
                "online": terminal.online if terminal else False,
                "staff": staff,
                "clerk": roster.clerk(db, staff) if staff else None,
            }
        )
    return render(
        request,
        "roster.html",
        site=site,
        hall=console.hall_name(site),
        rows=rows,
        clerks=roster.clerks(db),
        devices=sorted(console.devices(site)),
        history=roster.history(db, site),
    )


Change = tuple[str, str | None, str | None, str | None]  # device, counter, staff, staff_name


async def seat(request: Request) -> Response:
    """Log a clerk in at a counter (staff given) or out (none): the terminal's retained config.
    A clerk seated at another terminal of the hall is logged out there first: one clerk, one
    counter, so no rating lands on a clerk who is not at its counter."""
    site = request.path_params["site"]
    session = require(request, site=site, roles=("manager", "admin"))
    form = await posted(request, session)
    counter = name_field(form, "counter", "counter", "窗口")
    staff = name_field(form, "staff", "staff", "工号", required=False) or None
    db = db_of(request)
    row = db.execute(
        "SELECT device FROM counter WHERE site = ? AND counter = ?", (site, counter)
    ).fetchone()
    if row is None or row["device"] is None:
        raise Refused(404, f"窗口 {counter} 没有评价器。")
    clerk = roster.clerk(db, staff) if staff else None
    if staff and clerk is None:
        raise Refused(404, f"员工名录里没有工号 {staff}。")
    console = console_of(request)
    elsewhere = [
        t for t in console.link.terminals(site).values()
        if staff and t.staff == staff and t.device != row["device"]
    ]  # fmt: skip
    changes: list[Change] = [
        (t.device, roster.counter_of(db, site, t.device), None, None) for t in elsewhere
    ]
    changes.append((row["device"], counter, staff, clerk.name if clerk else None))
    return await _configure(request, site, changes, session.user.name)


async def _configure(
    request: Request,
    site: str,
    changes: list[Change],
    actor: str,
) -> Response:
    """Publish each terminal's config (device, counter, staff, staff_name) in turn, keeping
    each in the history of who sat where once the broker has it (or may have it)."""
    console = console_of(request)
    db = db_of(request)
    for done, (device, counter, staff, name) in enumerate(changes):
        config = {"counter": counter, "staff": staff, "staff_name": name}
        try:
            await blocking(console.link.publish_config, site, device, config)
        except Unconfirmed as e:
            roster.record_seating(db, site, device, counter, staff, actor=actor)
            raise Refused(
                504, f"已发给评价器 {device}，但消息服务器尚未确认，恢复连接后生效：{e}"
            ) from None
        except LinkError as e:
            said = "未做更改" if not done else f"只完成了前 {done} 项"
            raise Refused(503, f"消息服务器暂时连不上，{said}：{e}") from None
        roster.record_seating(db, site, device, counter, staff, actor=actor)
    return RedirectResponse(f"/hall/{site}/roster", 303)


async def set_counter(request: Request) -> Response:
    """Put a terminal at a counter (or none there). The terminal takes the counter in its
    config, keeping its clerk; a terminal the counter had before leaves it, its clerk logged
    out (a terminal at no counter rates for nobody)."""
    site = request.path_params["site"]
    session = require(request, site=site, roles=("manager", "admin"))
    form = await posted(request, session)
    counter = name_field(form, "counter", "counter", "窗口")
    device = name_field(form, "device", "device", "评价器", required=False) or None
    console = console_of(request)
    held = console.link.terminals(site)
    if device is not None and device not in console.devices(site):
        raise Refused(404, f"本厅没有评价器 {device}。")
    db = db_of(request)
    before = db.execute(
        "SELECT device FROM counter WHERE site = ? AND counter = ?", (site, counter)
    ).fetchone()
    old = before["device"] if before and before["device"] != device else None
    changes: list[Change] = []
    if old is not None:
        changes.append((old, None, None, None))
    if device is not None:
        staff = held[device].staff if device in held else None
        clerk = roster.clerk(db, staff) if staff else None
        changes.append((device, counter, staff, clerk.name if clerk else None))
    try:
        roster.check_counter(counter)
    except roster.RosterError as e:
        raise Refused(400, str(e)) from None
    answer = await _configure(request, site, changes, session.user.name)
    roster.set_counter(db, site, counter, device, session.user.name)
    return answer


async def clerks_page(request: Request) -> Response:
    require(request)
    return render(request, "clerks.html", clerks=roster.clerks(db_of(request)))


async def save_clerk(request: Request) -> Response:
    session = require(request, roles=("manager", "admin"))
    form = await posted(request, session)
    staff = name_field(form, "staff", "staff", "工号")
    name = text_field(form, "name", "姓名", max_chars=32)
    upload = form.get("photo")
    photo = None
    if upload is not None and not isinstance(upload, str):
        photo = await upload.read(roster.PHOTO_MAX_BYTES + 1) or None
    try:
        roster.save_clerk(db_of(request), staff, name, photo, session.user.name)
    except roster.RosterError as e:
        raise Refused(400, str(e)) from None
    return RedirectResponse("/clerks", 303)


async def clerk_photo(request: Request) -> Response:
    """A clerk's photo: to anyone logged in, and to the public while a wall shows them."""
    staff = request.path_params["staff"]
    if session_of(request) is None and not wall.shows(console_of(request), staff):
        raise Refused(404, "没有照片。")
    found = roster.photo(db_of(request), staff)
    if found is None:
        raise Refused(404, "没有照片。")
    data, kind = found
    return Response(data, media_type=kind, headers={"Cache-Control": "public, max-age=300"})
