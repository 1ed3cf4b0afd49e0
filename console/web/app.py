"""The console's web application: its routes, the refusal pages, the size limit on every
request, and the headers every page carries.

Every page is rendered on the server (Jinja2, autoescaped), with no script at all (the wall
display refreshes itself with a meta refresh). The headers forbid framing, scripts and
sniffing, and over HTTPS ask browsers to keep to it (HSTS); cookies are HttpOnly and
SameSite=Lax, and Secure over HTTPS (sessions.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console.web import admin, api, appeals, auth, cases, hall, roster, wall
from console.web.core import BODY_MAX_BYTES, HERE, Console, Refused, render, templates

log = structlog.get_logger("console")

HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip
HSTS = (b"strict-transport-security", b"max-age=31536000")


class Guard:
    """ASGI middleware: a body longer than BODY_MAX_BYTES is refused (413) before any of it
    is parsed, whether it says its length or not; every answer gets HEADERS."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        self.app = app
        self.headers = [*HEADERS, *([HSTS] if https else [])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > BODY_MAX_BYTES:
            await _too_large(send, scope["path"].startswith("/api/"), self.headers)
            return
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > BODY_MAX_BYTES:
                raise Refused(413, "提交的内容太大。")
            return message

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, bounded, headed)


async def _too_large(send: Send, api: bool, headers: list[tuple[bytes, bytes]]) -> None:
    if api:
        body, kind = b'{"error": "the body is too large"}', b"application/json"
    else:
        body, kind = "提交的内容太大。".encode(), b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", kind), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    log.info("refused", path=request.url.path, status=exc.status, reason=exc.why)
    if exc.status == 401 and request.method == "GET":
        return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.why}, status_code=exc.status)
    return render(request, "error.html", status=exc.status, why=exc.why)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    why = {404: "没有这个页面。", 405: "不支持这种请求。"}.get(exc.status_code, str(exc.detail))
    return render(request, "error.html", status=exc.status_code, why=why)


async def failed(request: Request, exc: Exception) -> Response:
    log.error("page_failed", path=request.url.path, error=repr(exc), exc_info=exc)
    return render(request, "error.html", status=500, why="系统出错，已记录。请稍后重试。")


def routes() -> list[Route | Mount]:
    return [
        Route("/", hall.index),
        Route("/login", auth.login_page),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/hall/{site}", hall.today_page),
        Route("/hall/{site}/terminals", hall.terminals_page),
        Route("/hall/{site}/terminals/prompt", hall.test_prompt, methods=["POST"]),
        Route("/hall/{site}/settings", admin.settings_page),
        Route("/hall/{site}/settings/hall", admin.save_hall, methods=["POST"]),
        Route("/hall/{site}/settings/token", admin.issue_token, methods=["POST"]),
        Route("/hall/{site}/settings/channel", admin.add_channel, methods=["POST"]),
        Route("/hall/{site}/settings/channel/remove", admin.remove_channel, methods=["POST"]),
        Route("/hall/{site}/settings/channel/change", admin.change_channel, methods=["POST"]),
        Route("/hall/{site}/settings/rota", admin.save_rota, methods=["POST"]),
        Route("/hall/{site}/settings/day", admin.plan_day, methods=["POST"]),
        Route("/regions", admin.regions_page),
        Route("/regions", admin.save_region, methods=["POST"]),
        Route("/audit", admin.audit_page),
        Route("/audit.csv", admin.audit_csv),
        Route("/wall/{site}", wall.wall),
        Route("/hall/{site}/roster", roster.roster_page),
        Route("/hall/{site}/roster/seat", roster.seat, methods=["POST"]),
        Route("/hall/{site}/roster/counter", roster.set_counter, methods=["POST"]),
        Route("/clerks", roster.clerks_page),
        Route("/clerks", roster.save_clerk, methods=["POST"]),
        Route("/clerks/{staff}/photo", roster.clerk_photo),
        Route("/cases", cases.register),
        Route("/cases.{kind:str}", cases.export),
        Route("/cases/{case_id}", cases.case_page),
        Route("/cases/{case_id}/step", cases.step, methods=["POST"]),
        Route("/cases/{case_id}/appeal", appeals.file_appeal, methods=["POST"]),
        Route("/appeals", appeals.appeals_page),
        Route("/appeals/decide", appeals.decide, methods=["POST"]),
        Route("/suspects/{site}", appeals.suspects_page),
        Route("/suspects/{site}", appeals.review, methods=["POST"]),
        Route("/api/v1/prompt", api.prompt, methods=["POST"]),
        Route("/healthz", api.healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def build(console: Console, background: Callable[[], Any] | None = None) -> Starlette:
    """The application around a console; `background` starts its threads and returns their
    stop, run with the server's lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = background() if background else None
        log.info("started", url=console.settings.public_url, db=str(console.settings.db))
        yield
        if stop:
            stop()

    app = Starlette(
        routes=routes(),
        exception_handlers={Refused: refused, HTTPException: http_error, Exception: failed},
        lifespan=lifespan,
    )
    app.state.console = console
    app.add_middleware(Guard, https=console.settings.tls_cert is not None)
    zone = console.settings.zone
    templates.env.filters["localtime"] = lambda at: dt.datetime.fromtimestamp(at, zone).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    templates.env.filters["shown_json"] = admin.shown_json
    return app
