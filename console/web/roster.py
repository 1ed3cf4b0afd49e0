"""排班: the hall's counters, who each terminal has now, logging clerks in and out; the
clerk directory with photos."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import roster
from console.link import LinkError
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
    on_roster = roster.devices_by_site(console.known).get(site, [])
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
        devices=sorted(set(on_roster) | set(terminals)),
        history=roster.history(db, site),
    )


async def seat(request: Request) -> Response:
    """Log a clerk in at a counter (staff given) or out (none): the terminal's retained config."""
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
    config = {
        "counter": counter,
        "staff": staff,
        "staff_name": clerk.name if clerk else None,
    }
    try:
        await blocking(console_of(request).link.publish_config, site, row["device"], config)
    except LinkError as e:
        raise Refused(503, f"消息服务器暂时连不上，未做更改：{e}") from None
    roster.record_seating(db, site, row["device"], counter, staff, actor=session.user.name)
    return RedirectResponse(f"/hall/{site}/roster", 303)


async def set_counter(request: Request) -> Response:
    site = request.path_params["site"]
    session = require(request, site=site, roles=("manager", "admin"))
    form = await posted(request, session)
    counter = name_field(form, "counter", "counter", "窗口")
    device = name_field(form, "device", "device", "评价器", required=False) or None
    console = console_of(request)
    known = set(roster.devices_by_site(console.known).get(site, [])) | set(
        console.link.terminals(site)
    )
    if device is not None and device not in known:
        raise Refused(404, f"本厅没有评价器 {device}。")
    try:
        roster.set_counter(db_of(request), site, counter, device, session.user.name)
    except roster.RosterError as e:
        raise Refused(400, str(e)) from None
    return RedirectResponse(f"/hall/{site}/roster", 303)


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
