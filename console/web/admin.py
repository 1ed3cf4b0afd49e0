"""营业厅设置 (a hall's name and region, its queue-system API token, where its notifications go,
its duty rota), the regions' deadlines, and the audit trail (a page and a CSV)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import audit, duty, notify, tables
from console.web.core import (
    Refused,
    console_of,
    db_of,
    posted,
    render,
    require,
    text_field,
    whole,
)

TOKEN_BYTES = 32
REGION_MAX = 32
AUDIT_SHOWN = 300
EDITORS = ("manager", "admin")


def _site(request: Request, roles: tuple[str, ...] | None = None) -> tuple[str, str]:
    site = request.path_params["site"]
    session = require(request, site=site, roles=roles)
    return site, session.user.name


async def settings_page(request: Request) -> Response:
    site, _ = _site(request)
    console = console_of(request)
    db = db_of(request)
    hall = db.execute("SELECT * FROM hall WHERE site = ?", (site,)).fetchone()
    return render(
        request,
        "settings.html",
        site=site,
        hall=console.hall_name(site),
        row=hall,
        regions=db.execute("SELECT * FROM region ORDER BY name").fetchall(),
        channels=notify.channels(db, site),
        waiting=notify.waiting(db, site),
        rota=duty.rota(db, site),
        planned=duty.planned_days(db, site, console.today()),
        on_duty=duty.on_duty(db, site, console.today()),
        token=request.query_params.get("token") is not None,
        kinds=notify.KINDS,
    )


def _save_hall(db: sqlite3.Connection, site: str, actor: str, **changes: str | None) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        old = db.execute("SELECT name, region FROM hall WHERE site = ?", (site,)).fetchone()
        db.execute("INSERT OR IGNORE INTO hall (site) VALUES (?)", (site,))
        for column, value in changes.items():
            db.execute(f"UPDATE hall SET {column} = ? WHERE site = ?", (value, site))
        shown = {k: v for k, v in changes.items() if k != "token"}
        audit.record(
            db, actor, "issue_token" if "token" in changes else "save_hall", site,
            before=None if old is None or not shown else {k: old[k] for k in shown},
            after=shown or {"token": "(new)"},
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


async def save_hall(request: Request) -> Response:
    site, actor = _site(request, roles=("admin",))
    form = await posted(request, require(request))
    name = text_field(form, "name", "营业厅名称", required=False, max_chars=40)
    region = text_field(form, "region", "地区", required=False, max_chars=REGION_MAX) or None
    db = db_of(request)
    if region and not db.execute("SELECT 1 FROM region WHERE name = ?", (region,)).fetchone():
        raise Refused(400, f"没有地区“{region}”：先在“地区期限”里添加。")
    _save_hall(db, site, actor, name=name, region=region)
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def issue_token(request: Request) -> Response:
    """A new API token for the hall's queue system, shown once; the old one stops working."""
    site, actor = _site(request, roles=EDITORS)
    await posted(request, require(request))
    row = db_of(request).execute("SELECT token FROM hall WHERE site = ?", (site,)).fetchone()
    had_token = row is not None and row["token"] is not None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    _save_hall(db_of(request), site, actor, token=hashlib.sha256(token.encode()).hexdigest())
    console = console_of(request)
    return render(
        request, "token.html", site=site, hall=console.hall_name(site), token=token,
        replaced=had_token, public_url=console.settings.public_url,
        ca=console.settings.tls_cert is not None,
    )  # fmt: skip


async def add_channel(request: Request) -> Response:
    site, actor = _site(request, roles=EDITORS)
    form = await posted(request, require(request))
    kind = text_field(form, "kind", "渠道", max_chars=16)
    target = text_field(
        form, "target", "Webhook 地址或邮箱", required=kind != "email", max_chars=500
    )
    secret = text_field(form, "secret", "加签密钥", required=False, max_chars=200)
    try:
        notify.add_channel(
            db_of(request), site, kind, target, secret, actor=actor,
            relays=console_of(request).settings.webhook_relays,
        )  # fmt: skip
    except notify.ChannelError as e:
        raise Refused(400, f"通知渠道设置有误：{e}") from None
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def change_channel(request: Request) -> Response:
    """A channel's new webhook or secret (a key or secret changed at the vendor): the messages
    waiting for it go to the new one, none dropped (removing the channel would drop them)."""
    site, actor = _site(request, roles=EDITORS)
    form = await posted(request, require(request))
    channel = whole(text_field(form, "channel", "渠道", max_chars=20), "渠道")
    target = text_field(form, "target", "Webhook 地址或邮箱", required=False, max_chars=500)
    secret = text_field(form, "secret", "加签密钥", required=False, max_chars=200)
    db = db_of(request)
    if not any(c.id == channel for c in notify.channels(db, site)):
        raise Refused(404, "本厅没有这个渠道。")
    try:
        notify.change_channel(
            db, channel, target=target or None, secret=secret or None, actor=actor,
            relays=console_of(request).settings.webhook_relays,
        )  # fmt: skip
    except notify.ChannelError as e:
        raise Refused(400, f"通知渠道设置有误：{e}") from None
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def remove_channel(request: Request) -> Response:
    site, actor = _site(request, roles=EDITORS)
    form = await posted(request, require(request))
    channel = whole(text_field(form, "channel", "渠道", max_chars=20), "渠道")
    db = db_of(request)
    if not any(c.id == channel for c in notify.channels(db, site)):
        raise Refused(404, "本厅没有这个渠道。")
    notify.remove_channel(db, channel, actor=actor)
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def save_rota(request: Request) -> Response:
    """The rota as lines of `姓名, 邮箱, 手机` (the last two may be left out), in order."""
    site, actor = _site(request, roles=EDITORS)
    form = await posted(request, require(request))
    text = text_field(form, "rota", "带班轮值", required=False, max_chars=6000, lines=True)
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
    if len(lines) > duty.ROTA_MAX:
        raise Refused(400, f"轮值最多 {duty.ROTA_MAX} 人。")
    people = []
    for line in lines:
        parts = [p.strip() for p in line.replace("，", ",").split(",")]
        parts += [""] * (3 - len(parts))
        if len(parts) > 3:
            raise Refused(400, f"每行写“姓名, 邮箱, 手机”：{line}")
        people.append(duty.DutyPerson(parts[0], parts[1], parts[2]))
    try:
        duty.set_rota(db_of(request), site, people, actor=actor)
    except duty.DutyError as e:
        raise Refused(400, f"带班设置有误：{e}") from None
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def plan_day(request: Request) -> Response:
    site, actor = _site(request, roles=EDITORS)
    form = await posted(request, require(request))
    raw = text_field(form, "day", "日期", max_chars=10)
    name = text_field(form, "name", "带班人", required=False, max_chars=32) or None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise Refused(400, "日期应写作 2026-12-07。") from None
    try:
        duty.plan_day(db_of(request), site, day, name, actor=actor)
    except duty.DutyError as e:
        raise Refused(400, f"带班设置有误：{e}") from None
    return RedirectResponse(f"/hall/{site}/settings", 303)


async def regions_page(request: Request) -> Response:
    require(request)
    console = console_of(request)
    return render(
        request,
        "regions.html",
        regions=db_of(request).execute("SELECT * FROM region ORDER BY name").fetchall(),
        default_callback=console.settings.callback_days,
        default_fix=console.settings.fix_days,
    )


async def save_region(request: Request) -> Response:
    session = require(request, roles=("admin",))
    form = await posted(request, session)
    name = text_field(form, "name", "地区", max_chars=REGION_MAX)
    days = {}
    for field, label in (("callback_days", "回访期限"), ("fix_days", "整改期限")):
        raw = text_field(form, field, label, max_chars=2)
        if not raw.isdigit() or not 1 <= int(raw) <= 60:
            raise Refused(400, f"“{label}”是 1 到 60 个工作日。")
        days[field] = int(raw)
    db = db_of(request)
    db.execute("BEGIN IMMEDIATE")
    try:
        old = db.execute("SELECT * FROM region WHERE name = ?", (name,)).fetchone()
        db.execute(
            "INSERT INTO region (name, callback_days, fix_days) VALUES (?, ?, ?) ON CONFLICT"
            " (name) DO UPDATE SET callback_days = excluded.callback_days, fix_days = "
            "excluded.fix_days",
            (name, days["callback_days"], days["fix_days"]),
        )
        audit.record(
            db, session.user.name, "save_region", name,
            before=None if old is None else {k: old[k] for k in days}, after=days,
        )  # fmt: skip
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return RedirectResponse("/regions", 303)


def _audit_rows(request: Request, limit: int | None) -> list[sqlite3.Row]:
    require(request, roles=("admin", "appraiser"))
    sql = "SELECT * FROM audit ORDER BY at DESC, id DESC"
    if limit is not None:
        return db_of(request).execute(sql + " LIMIT ?", (limit,)).fetchall()
    return db_of(request).execute(sql).fetchall()


async def audit_page(request: Request) -> Response:
    return render(request, "audit.html", rows=_audit_rows(request, AUDIT_SHOWN))


async def audit_csv(request: Request) -> Response:
    zone = console_of(request).settings.zone
    rows: list[list[tables.Cell]] = [
        [
            dt.datetime.fromtimestamp(r["at"], zone).isoformat(timespec="seconds"),
            *(r[k] for k in ("actor", "action", "subject", "before", "after")),
        ]
        for r in _audit_rows(request, None)
    ]
    body = tables.csv_bytes(["时间", "操作人", "操作", "对象", "之前", "之后"], rows)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


def shown_json(text: str | None) -> str:
    """An audit record's JSON as the page shows it: keys and values, no braces."""
    if not text:
        return ""
    data = json.loads(text)
    return "，".join(f"{k}: {v}" for k, v in data.items()) if isinstance(data, dict) else text
