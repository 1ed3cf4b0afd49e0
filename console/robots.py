"""One message to one place: a WeCom, DingTalk or Feishu group robot, or an e-mail.

Each function sends once and returns, or raises SendError with the reason (the vendor's own
code and message when it answered); retrying is the outbox's (console/notify.py). A robot's
webhook URL holds its key, so no reason, log line or audit entry ever carries a URL: a
transport failure names only the host.

The formats, as each vendor documents them (and as the tests' receivers check them):

- WeCom (企业微信) group robot, developer.work.weixin.qq.com/document/path/91770: POST JSON to
  `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`; `text` messages, because only
  they take `mentioned_mobile_list` (markdown cannot @ anyone); content at most 2048 bytes;
  success is `{"errcode": 0, "errmsg": "ok"}`, anything else (93000 invalid webhook URL,
  45009 over 20 messages a minute) a failure.
- DingTalk (钉钉) custom robot, open.dingtalk.com/document/robots/custom-robot-access: POST
  JSON to `https://oapi.dingtalk.com/robot/send?access_token=TOKEN`, signed ("加签") with
  `timestamp` (ms) and `sign` = base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")),
  URL-encoded, as query parameters, within an hour of DingTalk's clock; `markdown` with
  `at.atMobiles`, the mobile also written as "@mobile" in the text, where DingTalk renders
  the @; success `errcode` 0 (310000: sign not match, keywords not in content).
- Feishu/Lark (飞书) custom bot, open.feishu.cn/document/client-docs/bot-v3/add-custom-bot:
  POST JSON to `https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN`, signed with
  `timestamp` (s, a string) and `sign` = base64(HMAC-SHA256(key="{timestamp}\\n{secret}",
  msg="")) in the body; a `post` (rich text) message whose link is a real link; success
  `code` 0 (19021: sign match fail, 9499: bad request, 11232: rate limited). Feishu's answer
  also carries `StatusCode`/`StatusMessage` "for existing logic", and older bots answered with
  those alone: they are read when `code` is absent. Feishu's custom bots can @ only by user
  id, not by mobile, so there the duty manager is named in the text only.
- E-mail by SMTP with STARTTLS required (the server's certificate checked against
  `smtp_ca_file`, or the system's CAs, and its name), then AUTH when the URL has a user;
  `smtp+plain://` (no TLS) is for a relay on loopback only (console/settings.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from console.settings import SmtpAddress

HTTP_TIMEOUT_S = (5.0, 10.0)  # connecting, then each wait for the answer
SMTP_TIMEOUT_S = 20.0
REASON_MAX = 300
_MARKDOWN = re.compile(r"([\\`*_\[\]()#>|~])")


class SendError(RuntimeError):
    """The message did not go: why, with the vendor's code and message when it answered."""


@dataclass(frozen=True)
class Message:
    subject: str
    body: str  # plain text, one fact a line
    link: str  # the case's (or the hall's) page
    mobile: str = ""  # whom a robot @s; empty: nobody


def send_wecom(webhook: str, message: Message) -> None:
    text = f"{message.subject}\n{message.body}\n查看与处理：{message.link}"
    payload: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
    if message.mobile:
        payload["text"]["mentioned_mobile_list"] = [message.mobile]
    answer = _post("wecom", webhook, payload)
    _succeeded("wecom", answer, answer.get("errcode"), answer.get("errmsg"))


def send_dingtalk(webhook: str, secret: str, message: Message) -> None:
    lines = [f"### {_escaped(message.subject)}", *map(_escaped, message.body.splitlines())]
    lines.append(f"[查看与处理]({message.link})")
    if message.mobile:
        lines.append(f"@{message.mobile}")
    payload = {
        "msgtype": "markdown",
        "markdown": {"title": message.subject, "text": "\n\n".join(lines)},
        "at": {"atMobiles": [message.mobile] if message.mobile else [], "isAtAll": False},
    }
    params = None
    if secret:
        timestamp = str(int(time.time() * 1000))
        digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
        # requests URL-encodes the query once, as DingTalk wants the base64 sent
        params = {"timestamp": timestamp, "sign": base64.b64encode(digest.digest()).decode()}
    answer = _post("dingtalk", webhook, payload, params)
    _succeeded("dingtalk", answer, answer.get("errcode"), answer.get("errmsg"))


def send_feishu(webhook: str, secret: str, message: Message) -> None:
    rows: list[list[dict[str, str]]] = [
        [{"tag": "text", "text": line}] for line in message.body.splitlines()
    ]
    rows.append([{"tag": "a", "text": "查看与处理", "href": message.link}])
    payload: dict[str, Any] = {
        "msg_type": "post",
        "content": {"post": {"zh_cn": {"title": message.subject, "content": rows}}},
    }
    if secret:
        timestamp = str(int(time.time()))
        key = f"{timestamp}\n{secret}".encode()
        digest = hmac.new(key, b"", hashlib.sha256).digest()
        payload.update(timestamp=timestamp, sign=base64.b64encode(digest).decode())
    answer = _post("feishu", webhook, payload)
    if "code" in answer:
        _succeeded("feishu", answer, answer["code"], answer.get("msg"))
    else:  # an answer of the older form
        _succeeded("feishu", answer, answer.get("StatusCode"), answer.get("StatusMessage"))


def send_email(
    smtp: SmtpAddress,
    sender: str,
    to: str,
    message: Message,
    *,
    ca_file: Path | None,
    message_id: str,
) -> None:
    """One mail; `message_id` the same each time this message is tried, so that a copy sent
    twice (a crash between the server's 250 and the outbox's commit) can be told apart."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = message_id
    mail.set_content(f"{message.body}\n\n查看与处理：{message.link}\n", cte="base64")
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_S) as client:
            client.ehlo()
            if smtp.starttls:  # refused, not skipped, by a server that does not offer it
                client.starttls(context=ssl.create_default_context(cafile=ca_file))
                client.ehlo()
            if smtp.username is not None:
                client.login(smtp.username, smtp.password or "")
            client.send_message(mail)
    except (smtplib.SMTPException, OSError) as e:  # ssl.SSLError is an OSError
        reason = _reason(f"{type(e).__name__}: {e}")
        raise SendError(f"email via {smtp.host}:{smtp.port}: {reason}") from None


def _post(
    kind: str, webhook: str, payload: dict[str, Any], params: dict[str, str] | None = None
) -> dict[str, Any]:
    """The vendor's JSON answer; a failure to reach it, or an answer that is not JSON and
    not a success, raises."""
    where = urlsplit(webhook).netloc.rpartition("@")[2]  # host[:port], never the key
    try:
        response = requests.post(
            webhook, json=payload, params=params, timeout=HTTP_TIMEOUT_S, allow_redirects=False
        )
    except requests.Timeout:
        raise SendError(f"{kind}: {where} did not answer in time") from None
    except requests.RequestException as e:  # its text holds the URL: only its kind is kept
        raise SendError(f"{kind}: could not reach {where} ({type(e).__name__})") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SendError(f"{kind}: HTTP {response.status_code}, {_reason(response.text)!r}")
    if not 200 <= response.status_code < 300 and not answer.get("errcode", answer.get("code")):
        raise SendError(f"{kind}: HTTP {response.status_code}, {_reason(response.text)!r}")
    return answer


def _succeeded(kind: str, answer: dict[str, Any], code: object, text: object) -> None:
    if type(code) is not int or code != 0:  # an answer not the vendor's is never shown
        shown = (
            "an answer without the vendor's code"
            if code is None
            else f"{code} {_reason(str(text))}"
        )
        raise SendError(f"{kind} refused: {shown}")


def _escaped(text: str) -> str:
    """Text shown as itself in DingTalk's markdown (a 工号 with _ in it is not italics)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _reason(e: object) -> str:
    """Printable, bounded text for the outbox's last_error and the log."""
    text = str(e)
    return "".join(c if c.isprintable() else " " for c in text)[:REASON_MAX]
