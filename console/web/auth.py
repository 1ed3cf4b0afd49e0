"""Logging in and out.

The source's throttle (sessions.Throttle) is asked before any password is hashed; a wrong
login counts against both the source and the account (users.py locks it after five in a
row). `next` only ever leads to a path of this site, never to another host.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import audit, sessions, users
from console.web.core import (
    Refused,
    blocking_db,
    console_of,
    posted,
    render,
    require,
    session_of,
    text_field,
)

LOGIN_FIELDS = 5
NEXT_MAX = 500


def _next_path(raw: str | None) -> str:
    """A local path to go to after the login; '/' for anything else."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw if raw.isprintable() and len(raw) <= NEXT_MAX else "/"


async def login_page(request: Request) -> Response:
    if session_of(request) is not None:
        return RedirectResponse(_next_path(request.query_params.get("next")), 303)
    return render(request, "login.html", next=_next_path(request.query_params.get("next")))


async def login(request: Request) -> Response:
    console = console_of(request)
    source = request.client.host if request.client else "?"
    wait_s = console.throttle.wait_s(source)
    if wait_s > 0:
        raise Refused(429, f"登录失败次数过多，请 {int(wait_s // 60) + 1} 分钟后再试。")
    try:
        form = await request.form(max_files=0, max_fields=LOGIN_FIELDS)
    except Exception as e:
        raise Refused(400, f"表单无法读取：{e}") from None
    name = text_field(form, "name", "用户名", max_chars=users.NAME_MAX)
    password = form.get("password")
    if not isinstance(password, str) or len(password) > users.PASSWORD_MAX:
        raise Refused(400, "请填写密码（最多 256 个字符）。")
    next_path = _next_path(text_field(form, "next", "next", required=False, max_chars=NEXT_MAX))
    user = await blocking_db(request, users.log_in, name, password)
    if user is None:
        console.throttle.failed(source)
        return render(
            request, "login.html", status=401, next=next_path, name=name,
            error="用户名或密码不对，或账户因多次输错已锁定 15 分钟。",
        )  # fmt: skip
    secret, _ = sessions.start(console.db.get(), user)
    response = RedirectResponse(next_path, 303)
    response.set_cookie(
        sessions.COOKIE,
        secret,
        max_age=int(console.settings.session_s),
        httponly=True,
        samesite="lax",
        secure=console.settings.tls_cert is not None,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    session = require(request)
    await posted(request, session)
    db = console_of(request).db.get()
    sessions.end(db, request.cookies.get(sessions.COOKIE, ""))
    audit.record(db, session.user.name, "log_out", session.user.name)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
