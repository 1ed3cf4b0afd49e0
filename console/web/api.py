"""The queue-ticket system's API (叫号), and the health check.

    POST /api/v1/prompt
    Authorization: Bearer <the hall's API token>
    {"counter": "03", "ticket": "A023"}     or {"device": "ev-a1b2c3d4e5f6", "ticket": null}

The token names the hall (one token a hall, issued on its settings page, kept only as its
SHA-256); the counter (or the device) names the terminal, whose `prompt` the console
publishes, so a rating window opens for that ticket, on a terminal online now (one offline
would open it late, for a customer long gone: 409). Answers are JSON: 202 with what was
prompted, or an error status with {"error": "..."} saying why. docs/console.md has the
schema and a curl example.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console import roster
from console.link import PROMPT_EXPIRY_S, LinkError, Unconfirmed
from console.web.core import blocking, console_of, db_of
from firmware import contract

log = structlog.get_logger("console")
BODY_MAX_BYTES = 1024
FIELDS = ("counter", "device", "ticket")


def _error(status: int, why: str) -> JSONResponse:
    log.warning("prompt_refused", status=status, reason=why)
    return JSONResponse({"error": why}, status_code=status)


def _hall_of(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    for row in db_of(request).execute("SELECT site, token FROM hall WHERE token IS NOT NULL"):
        if hmac.compare_digest(row["token"], digest):
            return str(row["site"])
    return None


def _problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return f"unknown fields {unknown}; known: {list(FIELDS)}"
    if ("counter" in body) == ("device" in body):
        return "give either counter or device"
    for kind in ("counter", "device"):
        if kind in body and not contract.valid_name(kind, body[kind]):
            return f"{kind} {body[kind]!r} breaks the contract's name rule"
    ticket = body.get("ticket")
    if ticket is not None and not (contract.valid_ticket(ticket) and _encodable(ticket)):
        return f"ticket must be text of at most {contract.TICKET_MAX} characters, or null"
    return None


def _encodable(text: str) -> bool:
    """Text a message can carry: no lone surrogate (JSON's \\ud800 decodes to one)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _terminal(
    request: Request, site: str, counter: str | None, device: str | None
) -> tuple[str, str | None] | str:
    """(device, counter) the request names, or why it names no terminal of the hall."""
    db = db_of(request)
    if counter is not None:
        row = db.execute(
            "SELECT device FROM counter WHERE site = ? AND counter = ?", (site, counter)
        ).fetchone()
        if row is None or row["device"] is None:
            return f"counter {counter} of {site} has no terminal"
        return str(row["device"]), counter
    assert device is not None
    at = roster.counter_of(db, site, device)
    if at is None and device not in console_of(request).link.terminals(site):
        return f"{site} has no terminal {device}"
    return device, at


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    """The request's JSON object, checked; or the error that answers it."""
    raw = await request.body()
    if len(raw) > BODY_MAX_BYTES:
        return _error(413, f"the body is at most {BODY_MAX_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        return _error(400, f"the body is not JSON: {e}")
    problem = _problem(body)
    if problem:
        return _error(400, problem)
    assert isinstance(body, dict)
    return body


async def prompt(request: Request) -> Response:
    site = _hall_of(request)
    if site is None:
        return _error(401, "no valid API token (Authorization: Bearer <token>)")
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    target = _terminal(request, site, body.get("counter"), body.get("device"))
    if isinstance(target, str):
        return _error(404, target)
    device, counter = target
    if not console_of(request).link.online(site, device):
        return _error(409, f"terminal {device} of {site} is offline: no window opened")
    failed = await _send(request, site, device, body.get("ticket"))
    if failed is not None:
        return failed
    return JSONResponse(
        {"site": site, "device": device, "counter": counter, "ticket": body.get("ticket")},
        status_code=202,
    )


async def _send(request: Request, site: str, device: str, ticket: str | None) -> Response | None:
    """Publish the prompt; None once the broker has it, else the answer saying why not."""
    try:
        await blocking(console_of(request).link.publish_prompt, site, device, ticket)
    except Unconfirmed as e:
        why = f"sent, not confirmed: it opens a window if delivered within {PROMPT_EXPIRY_S} s"
        return _error(504, f"{why} ({e}); do not send it again")
    except LinkError as e:
        return _error(503, f"the broker link is down, nothing was sent: {e}")
    return None


async def healthz(request: Request) -> Response:
    console = console_of(request)
    broker = console.link.connected
    influx = await blocking(console.influx.ping)
    body = {"broker": broker, "influx": influx, "rejected": dict(console.link.rejected)}
    return JSONResponse(body, status_code=200 if broker and influx else 503)
