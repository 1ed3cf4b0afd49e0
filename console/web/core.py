"""What every page shares: the console's parts, the templates, who is logged in, and the
checks a request passes before a page acts (login, role, hall, CSRF, form fields).

A request that fails a check raises `Refused`, which becomes a page saying why in Chinese,
with its HTTP status, and changes nothing (app.py). Pages never reach the database or the
broker before the checks: a refusal is decided first, then the action is taken.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from collector.influx import InfluxHttp
from collector.known import KnownDevices
from console import appeals, cases, roster, sessions
from console.db import Connections
from console.link import HallLink
from console.settings import Settings
from console.users import User
from firmware import contract

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
FORM_FIELDS_MAX = 40
FIELD_MAX_CHARS = 2000  # any one text field
BODY_MAX_BYTES = roster.PHOTO_MAX_BYTES + 64 * 1024  # the largest form: a clerk with a photo

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["state_names"] = cases.STATE_NAMES
templates.env.globals["reason_names"] = {
    "attitude": "服务态度",
    "efficiency": "办事效率",
    "expertise": "业务水平",
    "environment": "营业环境",
    "other": "其他",
}
templates.env.globals["ground_names"] = appeals.GROUND_NAMES
templates.env.globals["decision_names"] = appeals.DECISION_NAMES
templates.env.globals["why_names"] = {  # collector/suspect.py's rules, and an upheld appeal
    "fast_press": "提示后过快按键",
    "no_window": "无叫号提示",
    "burst": "短时连续评价",
    "regular": "间隔机械规律",
    "appeal_upheld": "申诉成立",
}
templates.env.globals["channel_names"] = {
    "wecom": "企业微信群机器人",
    "dingtalk": "钉钉群机器人",
    "feishu": "飞书群机器人",
    "email": "电子邮件",
}
ROLE_NAMES = {"manager": "营业厅经理", "appraiser": "考核专员", "admin": "管理员"}
templates.env.globals["role_names"] = ROLE_NAMES


MONTH = re.compile(r"20[0-9]{2}-(0[1-9]|1[0-2])")  # a month a page takes: 2000-01 to 2099-12


def whole(raw: str, label: str, low: int = 1, high: int = contract.INT_MAX) -> int:
    """A whole number of ASCII digits within [low, high]; Refused otherwise."""
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise Refused(400, f"“{label}”应为 {low} 到 {high} 的整数。")
    return int(raw)


class Refused(Exception):
    """A request the console will not serve: its HTTP status and why, in Chinese."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


@dataclass
class Console:
    """The running console's parts, one per process (the app's state)."""

    settings: Settings
    db: Connections
    link: HallLink
    influx: InfluxHttp
    known: KnownDevices | None
    throttle: sessions.Throttle = field(default_factory=sessions.Throttle)

    def today(self) -> dt.date:
        return dt.datetime.now(self.settings.zone).date()

    def halls(self) -> list[str]:
        """Every hall the console knows: on the broker's roster, or set up here."""
        found = set(roster.devices_by_site(self.known))
        found |= {r["site"] for r in self.db.get().execute("SELECT site FROM hall")}
        found |= {r["site"] for r in self.db.get().execute("SELECT DISTINCT site FROM counter")}
        return sorted(found)

    def devices(self, site: str) -> set[str]:
        """The hall's terminals: on the broker's roster, or told of by the broker."""
        on_roster = roster.devices_by_site(self.known).get(site, [])
        return set(on_roster) | set(self.link.terminals(site))

    def halls_of(self, user: User) -> list[str]:
        return list(user.sites) if user.role == "manager" else self.halls()

    def hall_name(self, site: str) -> str:
        row = self.db.get().execute("SELECT name FROM hall WHERE site = ?", (site,)).fetchone()
        return row["name"] if row and row["name"] else site


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Work that waits (a hash, InfluxDB, the broker) off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


async def blocking_db(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(db, ...)` off the event loop, with the worker thread's own connection (a
    connection is used by the thread that opened it only)."""
    console = console_of(request)
    return await run_in_threadpool(lambda: fn(console.db.get(), *args, **kwargs))


def session_of(request: Request) -> sessions.Session | None:
    console = console_of(request)
    secret = request.cookies.get(sessions.COOKIE, "")
    if not secret:
        return None
    return sessions.find(console.db.get(), secret, console.settings.session_s)


def require(
    request: Request, *, site: str | None = None, roles: tuple[str, ...] | None = None
) -> sessions.Session:
    """The logged-in session, allowed this role and hall; Refused otherwise."""
    session = session_of(request)
    if session is None:
        raise Refused(401, "请先登录。")
    if roles is not None and session.user.role not in roles:
        raise Refused(403, "您的角色不能做这件事。")
    if site is not None:
        if not contract.valid_name("site", site):
            raise Refused(404, "没有这个营业厅。")
        if not session.user.may_act_on(site):
            raise Refused(403, "这不是您管理的营业厅。")
        if session.user.role == "appraiser" and site not in console_of(request).halls():
            raise Refused(404, "没有这个营业厅。")  # a manager's are theirs; an admin sets one up
    return session


async def posted(request: Request, session: sessions.Session) -> FormData:
    """A POSTed form, its CSRF token checked, its size bounded."""
    try:
        form = await request.form(
            max_files=1, max_fields=FORM_FIELDS_MAX, max_part_size=roster.PHOTO_MAX_BYTES
        )
    except Refused:
        raise
    except Exception as e:  # python-multipart's and Starlette's parse errors alike
        raise Refused(400, f"表单无法读取：{e}") from None
    if not sessions.check_csrf(session, _text(form.get("csrf"))):
        raise Refused(403, "表单已过期或不是本系统发出的（CSRF 校验失败），请刷新页面重试。")
    return form


def _text(value: str | UploadFile | None) -> str | None:
    return value if isinstance(value, str) else None


def text_field(
    form: FormData,
    name: str,
    label: str,
    *,
    required: bool = True,
    max_chars: int = 200,
    lines: bool = False,
) -> str:
    """A text field, stripped; Refused when missing, too long, or holding control characters
    (but the line breaks of a field of `lines`, a textarea's, kept as line feeds)."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise Refused(400, f"“{label}”应为文本。")
    value = (value or "").strip()
    if lines:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if required and not value:
        raise Refused(400, f"请填写“{label}”。")
    if len(value) > min(max_chars, FIELD_MAX_CHARS):
        raise Refused(400, f"“{label}”最多 {max_chars} 个字符。")
    if not (value.replace("\n", "") if lines else value).isprintable():
        raise Refused(400, f"“{label}”含有控制字符。")
    return value


def name_field(form: FormData, name: str, kind: str, label: str, *, required: bool = True) -> str:
    """A field holding a contract name (site, device, counter, staff)."""
    value = text_field(form, name, label, required=required, max_chars=32)
    if value and not contract.valid_name(kind, value):
        raise Refused(400, f"“{label}”格式不对：{value}")
    return value


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    session = session_of(request)
    context.setdefault("session", session)
    context.setdefault("user", session.user if session else None)
    context.setdefault("csrf", session.csrf if session else "")
    console = console_of(request)
    context.setdefault("grafana_url", console.settings.grafana_url)
    response = templates.TemplateResponse(request, template, context, status_code=status)
    if session is not None:  # a private page: never kept by a browser or a proxy
        response.headers["Cache-Control"] = "no-store"
    return response


def db_of(request: Request) -> sqlite3.Connection:
    return console_of(request).db.get()
