"""Notifications (console/notify.py, robots.py, duty.py) to local stand-ins of the three group
robots, each checking its key and signature as its vendor does and answering as the vendor
does, and to a real SMTP server (aiosmtpd) with STARTTLS and authentication: each message
arrives once, also after the receivers were down or answered errors for a while, after a
wrong secret was put right, and after a restart of the console; the duty manager (带班) of the
day comes from the rota or a planned day."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from broker import pki
from console import db, duty, notify, robots
from console.settings import Settings, from_env

SITE = "sjz-yuhua"
HALL = "裕华营业厅"
ZONE = ZoneInfo("Asia/Shanghai")
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN, DING_SECRET = "0c23ab8f7e", "SEC5a3ecf88f2b3eb50db30ecfc00f53033ac909c99bf7f88fd6"
FEISHU_TOKEN, FEISHU_SECRET = "5e3d587e-d78e-4a07-bd07-265f269f86fd", "nIMtb7r3N9pkXyXdtAbx6e"
SECRETS = (WECOM_KEY, DING_TOKEN, DING_SECRET, FEISHU_TOKEN, FEISHU_SECRET)
MAIL_USER, MAIL_PASSWORD = "svc-console", "a mail password"
LINK = "https://console.hall.example/cases/7"
ZHANG = duty.DutyPerson("张伟", "zhang.wei@hall.example", "13800000001")
LI = duty.DutyPerson("李娜", "li.na@hall.example", "+8613900000002")
POOR = {
    "v": 1,
    "kind": "poor_rating",
    "site": SITE,
    "device": "ev-a1b2c3d4e5f6",
    "counter": "03",
    "staff": "E1023",
    "score": 1,
    "reason": "attitude",
    "ts": 1795347568123,  # 2026-11-22 19:39:28 in Shanghai
    "seq": 1042,
}
TREND = {**POOR, "kind": "trend", "score": 2, "ratings": 4, "unhappy": 2, "window_s": 900}
OFFLINE = {
    "v": 1,
    "kind": "device",
    "problem": "offline",
    "site": SITE,
    "device": "ev-a1b2c3d4e5f6",
    "at": 1795347868000,
    "since": 1795347568000,
}
ROBOTS = ("wecom", "dingtalk", "feishu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64_hmac(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Robots:
    """The three vendors' webhooks on one loopback port, down until started. Each checks its
    key, and its signature within the hour, as the vendor does, and answers as it does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.netloc = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.netloc}"
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.refusing = False  # answer with each vendor's rate-limit error
        self.feishu_legacy = False  # answer as Feishu's older bots did
        self.secrets = {"dingtalk": DING_SECRET, "feishu": FEISHU_SECRET}
        self.on_accept: Callable[[], None] | None = None  # once, as a message is accepted
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def webhook(self, kind: str) -> str:
        return {
            "wecom": f"{self.url}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "dingtalk": f"{self.url}/robot/send?access_token={DING_TOKEN}",
            "feishu": f"{self.url}/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
        }[kind]

    def start(self) -> None:
        robots_ = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                parts = urlsplit(self.path)
                with robots_._lock:
                    answer = robots_.answer(parts.path, parse_qs(parts.query), body)
                data = json.dumps(answer).encode()
                self.send_response(200)  # the vendors answer errors with 200 and a code
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def kinds(self) -> list[str]:
        return sorted(kind for kind, _ in self.received)

    def answer(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict:
        now = time.time()
        if path == "/cgi-bin/webhook/send":
            if query.get("key") != [WECOM_KEY]:
                return {"errcode": 93000, "errmsg": "invalid webhook url"}
            if self.refusing:
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            assert body["msgtype"] == "text"
            assert len(body["text"]["content"].encode()) <= 2048
            if self.on_accept is not None:
                self.on_accept, accepted = None, self.on_accept
                accepted()
            self.received.append(("wecom", body))
            return {"errcode": 0, "errmsg": "ok"}
        if path == "/robot/send":
            if query.get("access_token") != [DING_TOKEN]:
                return {"errcode": 300001, "errmsg": "token is not exist"}
            # parse_qs decoded the query once: a "+" of the base64 sent bare would be a space
            stamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
            secret = self.secrets["dingtalk"]
            if not (
                stamp.isdigit()
                and abs(int(stamp) / 1000 - now) < 3600
                and hmac.compare_digest(sign, b64_hmac(secret, f"{stamp}\n{secret}"))
            ):
                return {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc]"}
            if self.refusing:
                return {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
            assert body["msgtype"] == "markdown" and body["markdown"]["title"]
            self.received.append(("dingtalk", body))
            return {"errcode": 0, "errmsg": "ok"}
        if path.startswith("/open-apis/bot/v2/hook/"):
            if path.rpartition("/")[2] != FEISHU_TOKEN:
                return {
                    "code": 19001,
                    "msg": "param invalid: incoming webhook access token invalid",
                }
            stamp, secret = str(body.get("timestamp", "")), self.secrets["feishu"]
            if not (
                stamp.isdigit()
                and abs(int(stamp) - now) < 3600
                and hmac.compare_digest(str(body.get("sign")), b64_hmac(f"{stamp}\n{secret}", ""))
            ):
                return {
                    "code": 19021,
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                    "data": {},
                }
            if self.refusing:
                return {"code": 11232, "msg": "frequency limited", "data": {}}
            assert body["msg_type"] == "post"
            self.received.append(("feishu", body))
            if self.feishu_legacy:
                return {"Extra": None, "StatusCode": 0, "StatusMessage": "success"}
            ok = {"code": 0, "msg": "success", "data": {}}
            return {**ok, "Extra": None, "StatusCode": 0, "StatusMessage": "success"}
        return {"code": 404, "msg": "not found"}


@dataclass
class Mail:
    message: EmailMessage
    rcpt: list[str]
    tls: bool
    authenticated: bool


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback, down until started: STARTTLS required before
    AUTH, AUTH before mail; or, `starttls` false, a server offering neither."""

    def __init__(self, cert: Path, key: Path, *, starttls: bool = True) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._cert, self._key, self._starttls = cert, key, starttls
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(
            Mail(message, list(envelope.rcpt_tos), session.ssl is not None, session.authenticated)
        )
        return "250 OK"

    def start(self) -> None:
        context = None
        if self._starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._cert, self._key)
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
            tls_context=context,
            require_starttls=self._starttls,
            authenticator=self._authenticate,
            auth_required=self._starttls,
            auth_require_tls=self._starttls,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @staticmethod
    def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        right = (MAIL_USER.encode(), MAIL_PASSWORD.encode())
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == right
        return AuthResult(success=ok, handled=False)  # handled: aiosmtpd answers 535


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path


def certificates(folder: Path) -> Certificates:
    folder.mkdir()
    ca = pki.make_ca("svc-rating test CA")
    server = pki.make_server(ca, ["127.0.0.1", "localhost"])
    paths = Certificates(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    paths.ca.write_bytes(ca.cert_pem)
    paths.cert.write_bytes(server.cert_pem)
    paths.key.write_bytes(server.key_pem)
    return paths


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return certificates(tmp_path / "pki")


@pytest.fixture
def receivers() -> Iterator[Robots]:
    robots_ = Robots()
    yield robots_
    robots_.stop()


@pytest.fixture
def mailbox(certs: Certificates) -> Iterator[Mailbox]:
    box = Mailbox(certs.cert, certs.key)
    yield box
    box.stop()


def settings_for(folder: Path, mail_port: int, ca: Path, **more: str) -> Settings:
    env = {
        "SVC_CONSOLE_DB": str(folder / "console.db"),
        "SVC_CONSOLE_SMTP_URL": f"smtp://{MAIL_USER}:a%20mail%20password@127.0.0.1:{mail_port}",
        "SVC_CONSOLE_SMTP_FROM": "svc-console@hall.example",
        "SVC_CONSOLE_SMTP_CA_FILE": str(ca),
    }
    return from_env({**env, **{f"SVC_CONSOLE_{k.upper()}": v for k, v in more.items()}})


class Console:
    """The console's database with a hall, its rota (李娜 on duty today) and a channel of each
    kind; and the senders it started, stopped at the end."""

    def __init__(self, settings: Settings, receivers: Robots) -> None:
        self.settings = settings
        self.db = db.connect(settings.db)
        self.senders: list[notify.Sender] = []
        self.db.execute("INSERT INTO hall (site, name) VALUES (?, ?)", (SITE, HALL))
        duty.set_rota(self.db, SITE, [ZHANG, LI], actor="admin")
        duty.plan_day(self.db, SITE, dt.datetime.now(ZONE).date(), LI.name, actor="admin")
        self.channel = {
            kind: notify.add_channel(
                self.db,
                SITE,
                kind,
                receivers.webhook(kind),
                secret,
                actor="admin",
                relays=(receivers.netloc,),
            )
            for kind, secret in (
                ("wecom", ""),
                ("dingtalk", DING_SECRET),
                ("feishu", FEISHU_SECRET),
            )
        }
        self.channel["email"] = notify.add_channel(self.db, SITE, "email", "", actor="admin")

    def sender(self) -> notify.Sender:
        sender = notify.Sender(self.settings)
        self.senders.append(sender)
        return sender

    def outbox(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT o.*, c.kind FROM outbox o JOIN channel c ON c.id = o.channel ORDER BY o.id"
        )
        return [dict(row) for row in rows]

    def close(self) -> None:
        for sender in self.senders:
            sender.stop()
        self.db.close()


@pytest.fixture
def console(
    tmp_path: Path, receivers: Robots, mailbox: Mailbox, certs: Certificates
) -> Iterator[Console]:
    hall = Console(settings_for(tmp_path, mailbox.port, certs.ca), receivers)
    yield hall
    hall.close()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in (*SECRETS, MAIL_PASSWORD):
            assert secret not in str(text)


# --- the duty manager of the day ---


def test_the_rota_turns_a_person_a_day_and_a_planned_day_overrides_it(tmp_path: Path):
    conn = db.connect(tmp_path / "console.db")
    wang = duty.DutyPerson("王芳")
    stored = duty.set_rota(conn, SITE, [ZHANG, LI, wang], actor="admin", now=100.0)
    assert stored == [ZHANG, LI, wang] and duty.rota(conn, SITE) == stored
    anchor = duty.ROTA_ANCHOR
    days = [anchor + dt.timedelta(days=n) for n in range(-1, 5)]
    assert [duty.on_duty(conn, SITE, day) for day in days] == [wang, ZHANG, LI, wang, ZHANG, LI]
    assert duty.on_duty(conn, "another-hall", anchor) is None

    holiday = anchor + dt.timedelta(days=31)
    assert duty.on_duty(conn, SITE, holiday) == LI
    duty.plan_day(conn, SITE, holiday, "王芳", actor="wang", now=200.0)
    assert duty.on_duty(conn, SITE, holiday) == wang
    assert duty.on_duty(conn, SITE, holiday + dt.timedelta(days=1)) == wang  # the rota's own
    assert duty.planned_days(conn, SITE, anchor) == [(holiday, "王芳")]
    duty.plan_day(conn, SITE, holiday, None, actor="wang", now=300.0)
    assert duty.on_duty(conn, SITE, holiday) == LI and duty.planned_days(conn, SITE, anchor) == []

    # a planned person who left the rota is still on duty that day, without contacts
    duty.plan_day(conn, SITE, holiday, "张伟", actor="wang")
    duty.set_rota(conn, SITE, [LI, wang], actor="admin")
    assert duty.on_duty(conn, SITE, holiday) == duty.DutyPerson("张伟")
    assert duty.on_duty(conn, SITE, anchor) == LI  # the days dealt again from the anchor

    trail = conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
    assert [(e["actor"], e["action"], e["subject"]) for e in trail[:3]] == [
        ("admin", "set_duty_rota", SITE),
        ("wang", "plan_duty_day", f"{SITE} {holiday}"),
        ("wang", "plan_duty_day", f"{SITE} {holiday}"),
    ]
    assert json.loads(trail[0]["before"]) == {"rota": []}
    assert json.loads(trail[0]["after"])["rota"][1] == {
        "name": "李娜",
        "email": "li.na@hall.example",
        "mobile": "+8613900000002",
    }
    assert (trail[1]["before"], json.loads(trail[1]["after"])) == (None, {"name": "王芳"})
    assert (json.loads(trail[2]["before"]), trail[2]["after"]) == ({"name": "王芳"}, None)
    assert [e["at"] for e in trail[:3]] == [100.0, 200.0, 300.0]


@pytest.mark.parametrize(
    ("person", "words"),
    [
        (duty.DutyPerson(""), "1 to 32 printable"),
        (duty.DutyPerson("张" * 33), "1 to 32 printable"),
        (duty.DutyPerson("张\x07伟"), "1 to 32 printable"),
        (duty.DutyPerson(" 张伟"), "1 to 32 printable"),
        (duty.DutyPerson("张伟", email="zhang"), "not an e-mail address"),
        (duty.DutyPerson("张伟", email="zhang@hall"), "not an e-mail address"),
        (duty.DutyPerson("张伟", email="z w@hall.example"), "not an e-mail address"),
        (duty.DutyPerson("张伟", email="z@hall.example\r\nBcc: x@y.cn"), "not an e-mail address"),
        (duty.DutyPerson("张伟", email="张@hall.example"), "not an e-mail address"),
        (duty.DutyPerson("张伟", mobile="138-0000-0001"), "digits"),
        (duty.DutyPerson("张伟", mobile="1380"), "digits"),
        (duty.DutyPerson("张伟", mobile="138 0000 0001"), "digits"),
    ],
)
def test_a_rota_with_a_bad_name_or_contact_is_refused_and_nothing_changes(
    tmp_path: Path, person: duty.DutyPerson, words: str
):
    conn = db.connect(tmp_path / "console.db")
    duty.set_rota(conn, SITE, [LI], actor="admin")
    with pytest.raises(duty.DutyError, match=words):
        duty.set_rota(conn, SITE, [ZHANG, person], actor="admin")
    assert duty.rota(conn, SITE) == [LI]
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


def test_a_plan_for_someone_off_the_rota_a_double_name_or_a_bad_hall_is_refused(tmp_path: Path):
    conn = db.connect(tmp_path / "console.db")
    duty.set_rota(conn, SITE, [ZHANG], actor="admin")
    with pytest.raises(duty.DutyError, match="not on"):
        duty.plan_day(conn, SITE, duty.ROTA_ANCHOR, "李娜", actor="admin")
    with pytest.raises(duty.DutyError, match="once"):
        duty.set_rota(conn, SITE, [LI, LI], actor="admin")
    with pytest.raises(duty.DutyError, match="site name"):
        duty.set_rota(conn, "Bad Hall", [LI], actor="admin")
    assert duty.planned_days(conn, SITE, duty.ROTA_ANCHOR) == []
    assert duty.rota(conn, SITE) == [ZHANG]
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 1


# --- arriving once ---


def test_a_poor_rating_reaches_each_robot_and_the_duty_managers_mailbox_once(
    console: Console, receivers: Robots, mailbox: Mailbox, logs: list[dict[str, Any]]
):
    receivers.start()
    mailbox.start()
    now = time.time()
    assert notify.enqueue(console.db, POOR, LINK, now) == 4
    sender = console.sender()
    assert sender.run_once(now) == 4
    assert receivers.kinds() == ["dingtalk", "feishu", "wecom"]
    assert len(mailbox.mails) == 1
    # again: nothing due, and the same alert again (a collector's resend) enqueues nothing
    assert sender.run_once(now + 3600) == 0
    assert notify.enqueue(console.db, dict(POOR), LINK, now + 10) == 0
    assert sender.run_once(now + 7200) == 0
    assert len(receivers.received) == 3 and len(mailbox.mails) == 1
    assert all(row["sent"] == now and row["attempts"] == 1 for row in console.outbox())

    facts = [
        f"营业厅：{HALL}",
        "窗口：03 号窗口",
        "营业员工号：E1023",
        "评分：1 分",
        "原因：态度",
        "评价时间：2026-11-22 19:39:28",
        "带班：李娜",
    ]
    got = dict(receivers.received)
    wecom = got["wecom"]["text"]
    assert all(fact in wecom["content"] for fact in facts) and LINK in wecom["content"]
    assert wecom["mentioned_mobile_list"] == [LI.mobile]
    ding = got["dingtalk"]
    assert all(fact in ding["markdown"]["text"] for fact in facts)
    assert f"]({LINK})" in ding["markdown"]["text"] and f"@{LI.mobile}" in ding["markdown"]["text"]
    assert ding["at"] == {"atMobiles": [LI.mobile], "isAtAll": False}
    post = got["feishu"]["content"]["post"]["zh_cn"]
    texts = [part.get("text") for row in post["content"] for part in row]
    assert all(fact in texts for fact in facts) and "收到差评" in post["title"]
    assert {"tag": "a", "text": "查看与处理", "href": LINK} in post["content"][-1]

    mail = mailbox.mails[0]
    assert (mail.rcpt, mail.tls, mail.authenticated) == ([LI.email], True, True)
    assert mail.message["Subject"] == f"{HALL}：03 号窗口收到差评（1 分）"
    assert mail.message["From"] == "svc-console@hall.example"
    text = mail.message.get_content()
    assert all(fact in text for fact in facts) and LINK in text

    assert [e["event"] for e in logs].count("notification_sent") == 4
    assert_no_secret(logs, console.outbox())


def test_trend_and_offline_alerts_go_once_each_and_a_new_episode_again(
    console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.start()
    mailbox.start()
    console.db.execute(
        "INSERT INTO counter (site, counter, device) VALUES (?, '05', ?)", (SITE, OFFLINE["device"])
    )
    now = time.time()
    assert notify.enqueue(console.db, TREND, "https://console.hall.example/today", now) == 4
    assert notify.enqueue(console.db, OFFLINE, "https://console.hall.example/today", now) == 4
    assert notify.enqueue(console.db, dict(TREND), LINK, now) == 0
    assert notify.enqueue(console.db, dict(OFFLINE), LINK, now) == 0
    assert console.sender().run_once(now) == 8
    subjects = sorted(mail.message["Subject"] for mail in mailbox.mails)
    assert subjects == [f"{HALL}：03 号窗口不满意评价集中", f"{HALL}：05 号窗口的评价终端离线"]
    offline = next(m for m in mailbox.mails if "离线" in m.message["Subject"]).message
    assert "离线起于：2026-11-22 19:39:28" in offline.get_content()
    trend = next(m for m in mailbox.mails if "集中" in m.message["Subject"]).message
    assert "近 15 分钟 4 个评价中 2 个不满意" in trend.get_content()

    again = {**OFFLINE, "at": OFFLINE["at"] + 3_600_000}  # offline again, an hour on
    assert notify.enqueue(console.db, again, LINK, now) == 4
    tipped = {**TREND, "seq": TREND["seq"] + 7}  # a new episode, tipped by another rating
    assert notify.enqueue(console.db, tipped, LINK, now) == 4
    assert console.sender().run_once(now) == 8
    assert len(mailbox.mails) == 4 and len(receivers.received) == 12


@pytest.mark.parametrize(
    "alert",
    [
        {**POOR, "kind": "praise"},
        {**POOR, "seq": None},
        {**POOR, "seq": True},
        {**POOR, "site": "Bad Hall"},
        {**OFFLINE, "problem": "on_fire"},
        {key: value for key, value in OFFLINE.items() if key != "at"},
    ],
)
def test_an_alert_not_to_notify_enqueues_nothing_and_says_why(
    console: Console, alert: dict[str, Any], logs: list[dict[str, Any]]
):
    assert notify.enqueue(console.db, alert, LINK, time.time()) == 0
    assert console.outbox() == []
    assert [e["event"] for e in logs] == ["alert_not_notified"]


def test_a_duty_manager_without_an_address_gets_the_channels_address_or_nothing(
    console: Console, mailbox: Mailbox, logs: list[dict[str, Any]]
):
    today = dt.datetime.now(ZONE).date()
    duty.set_rota(console.db, SITE, [duty.DutyPerson("赵强")], actor="admin")
    duty.plan_day(console.db, SITE, today, None, actor="admin")
    now = time.time()
    assert notify.enqueue(console.db, POOR, LINK, now) == 3  # the robots only
    assert [e["event"] for e in logs] == ["notification_unaddressed"]
    notify.change_channel(
        console.db, console.channel["email"], target="hall@hall.example", actor="a"
    )
    assert notify.enqueue(console.db, POOR, LINK, now) == 1  # the e-mail's row, now
    mailbox.start()
    sender = console.sender()
    sender.run_once(now)
    assert [mail.rcpt for mail in mailbox.mails] == [["hall@hall.example"]]
    robots_rows = [row for row in console.outbox() if row["kind"] != "email"]
    assert {row["recipient"] for row in robots_rows} == {""}  # nobody to @


def test_odd_values_in_an_alert_are_told_as_unknown_not_a_failure(console: Console):
    odd = {**POOR, "counter": None, "staff": "E 1023", "reason": ["attitude"], "ts": 10**30}
    assert notify.enqueue(console.db, odd, LINK, time.time()) == 4
    body = console.outbox()[0]["body"]
    for fact in ("窗口：未知窗口", "营业员工号：无人登录", "原因：未选择", "评价时间：未知"):
        assert fact in body


# --- down, refusing, wrongly signed: waiting, then once ---


def test_messages_wait_while_the_receivers_are_down_and_arrive_once_when_they_are_back(
    console: Console, receivers: Robots, mailbox: Mailbox, logs: list[dict[str, Any]]
):
    now = time.time()
    notify.enqueue(console.db, POOR, LINK, now)
    sender = console.sender()
    assert sender.run_once(now) == 0  # nobody listening: connection refused
    rows = console.outbox()
    assert [row["attempts"] for row in rows] == [1, 1, 1, 1]
    assert {row["next_try"] for row in rows} == {now + 10}
    assert all(row["sent"] is None for row in rows)
    errors = {row["kind"]: row["last_error"] for row in rows}
    assert errors["wecom"] == f"wecom: could not reach 127.0.0.1:{receivers.port} (ConnectionError)"
    assert errors["email"].startswith(f"email via 127.0.0.1:{mailbox.port}: ")

    assert sender.run_once(now + 9) == 0  # not due yet: nothing tried
    assert [row["attempts"] for row in console.outbox()] == [1, 1, 1, 1]
    assert sender.run_once(now + 10) == 0  # due, tried, still down: 20 s more
    assert {row["next_try"] for row in console.outbox()} == {now + 30}
    assert sender.run_once(now + 30) == 0
    assert {row["next_try"] for row in console.outbox()} == {now + 70}

    receivers.start()
    mailbox.start()
    assert sender.run_once(now + 69) == 0  # back, but not yet due
    assert sender.run_once(now + 70) == 4
    assert sender.run_once(now + 4000) == 0
    assert receivers.kinds() == ["dingtalk", "feishu", "wecom"] and len(mailbox.mails) == 1
    assert [row["attempts"] for row in console.outbox()] == [4, 4, 4, 4]
    assert all(row["last_error"] is None for row in console.outbox())
    failed = [e for e in logs if e["event"] == "notification_failed"]
    assert len(failed) == 12 and failed[0]["retry_in_s"] == 10
    assert_no_secret(logs, console.outbox())


def test_the_backoff_doubles_to_fifteen_minutes_and_the_message_is_never_dropped(
    console: Console,
):
    now = time.time()
    for kind in ("dingtalk", "feishu", "email"):
        notify.remove_channel(console.db, console.channel[kind], actor="admin")
    notify.enqueue(console.db, POOR, LINK, now)
    sender = console.sender()
    delays = []
    at = now
    for _ in range(10):
        sender.run_once(at)
        (row,) = console.outbox()
        delays.append(row["next_try"] - at)
        at = row["next_try"]
    assert delays == [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]
    assert row["attempts"] == 10 and row["sent"] is None


def test_a_vendors_error_answer_is_kept_and_the_message_retried_until_accepted(
    console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.refusing = True
    receivers.start()
    now = time.time()
    notify.enqueue(console.db, POOR, LINK, now)
    sender = console.sender()
    assert sender.run_once(now) == 0
    errors = {row["kind"]: row["last_error"] for row in console.outbox()}
    assert errors["wecom"] == "wecom refused: 45009 api freq out of limit"
    assert (
        errors["dingtalk"] == "dingtalk refused: 130101 send too fast, exceed 20 times per minute"
    )
    assert errors["feishu"] == "feishu refused: 11232 frequency limited"
    receivers.refusing = False
    mailbox.start()
    assert sender.run_once(now + 10) == 4
    assert receivers.kinds() == ["dingtalk", "feishu", "wecom"] and len(mailbox.mails) == 1


def test_a_wrong_signing_secret_is_a_failure_retried_until_it_is_put_right(
    console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.secrets = {"dingtalk": "SECthe-one-the-vendor-has", "feishu": "the-vendors-own"}
    receivers.start()
    mailbox.start()
    now = time.time()
    notify.enqueue(console.db, POOR, LINK, now)
    sender = console.sender()
    assert sender.run_once(now) == 2  # wecom (no signing) and e-mail
    errors = {row["kind"]: row["last_error"] for row in console.outbox()}
    assert errors["dingtalk"].startswith("dingtalk refused: 310000 sign not match")
    assert errors["feishu"] == (
        "feishu refused: 19021 sign match fail or timestamp is not within one hour from current"
        " time"
    )
    assert sender.run_once(now + 10) == 0  # still wrong: retried, not lost
    relays = (receivers.netloc,)
    notify.change_channel(
        console.db, console.channel["dingtalk"], secret="SECthe-one-the-vendor-has",
        actor="admin", relays=relays,
    )  # fmt: skip
    notify.change_channel(
        console.db, console.channel["feishu"], secret="the-vendors-own", actor="admin",
        relays=relays,
    )  # fmt: skip
    assert sender.run_once(now + 30) == 2
    assert receivers.kinds() == ["dingtalk", "feishu", "wecom"] and len(mailbox.mails) == 1
    trail = console.db.execute("SELECT * FROM audit WHERE action = 'change_channel'").fetchall()
    assert [json.loads(entry["after"])["signed"] for entry in trail] == [True, True]
    assert_no_secret(*(tuple(entry) for entry in trail))
    assert "the-vendors-own" not in str([tuple(entry) for entry in trail])


def test_feishus_older_answer_is_read_as_its_code(console: Console, receivers: Robots):
    receivers.feishu_legacy = True
    receivers.start()
    message = robots.Message("主题", "一行", LINK)
    robots.send_feishu(receivers.webhook("feishu"), FEISHU_SECRET, message)
    assert receivers.kinds() == ["feishu"]
    with pytest.raises(robots.SendError, match="19021"):
        robots.send_feishu(receivers.webhook("feishu"), "not the secret", message)


# --- the mail server's TLS and password ---


@pytest.mark.parametrize("trouble", ["no_starttls", "another_ca", "wrong_password"])
def test_mail_without_starttls_to_an_unknown_certificate_or_a_wrong_password_fails_and_waits(
    tmp_path: Path, certs: Certificates, receivers: Robots, trouble: str
):
    box = Mailbox(certs.cert, certs.key, starttls=trouble != "no_starttls")
    box.start()
    ca = certificates(tmp_path / "other").ca if trouble == "another_ca" else certs.ca
    settings = settings_for(tmp_path, box.port, ca)
    if trouble == "wrong_password":
        settings = settings_for(tmp_path, box.port, ca, smtp_url=f"smtp://x:y@127.0.0.1:{box.port}")
    hall = Console(settings, receivers)
    try:
        now = time.time()
        notify.enqueue(hall.db, POOR, LINK, now)
        assert hall.sender().run_once(now) == 0
        (row,) = [row for row in hall.outbox() if row["kind"] == "email"]
        assert row["attempts"] == 1 and row["sent"] is None
        expected = {
            "no_starttls": "SMTPNotSupportedError",
            "another_ca": "CERTIFICATE_VERIFY_FAILED",
            "wrong_password": "535",
        }[trouble]
        assert expected in row["last_error"] or expected in str(row)
        assert box.mails == []
    finally:
        hall.close()
        box.stop()


def test_plain_smtp_goes_to_a_relay_on_loopback_without_tls(
    tmp_path: Path, certs: Certificates, receivers: Robots
):
    box = Mailbox(certs.cert, certs.key, starttls=False)
    box.start()
    settings = settings_for(
        tmp_path, box.port, certs.ca, smtp_url=f"smtp+plain://127.0.0.1:{box.port}"
    )
    hall = Console(settings, receivers)
    try:
        now = time.time()
        notify.enqueue(hall.db, POOR, LINK, now)
        hall.sender().run_once(now)
        assert [(m.rcpt, m.tls) for m in box.mails] == [([LI.email], False)]
    finally:
        hall.close()
        box.stop()


# --- a restart, and two senders at once ---


def test_after_a_restart_what_was_pending_is_sent_and_nothing_twice(
    tmp_path: Path, console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.start()
    mailbox.start()
    now = time.time()
    notify.enqueue(console.db, POOR, LINK, now)
    assert console.sender().run_once(now) == 4  # the first rating went before the restart
    receivers.stop()
    mailbox.stop()
    second = {**POOR, "seq": POOR["seq"] + 1, "score": 2}
    notify.enqueue(console.db, second, LINK, now + 1)
    assert console.senders[0].run_once(now + 1) == 0  # the second waits
    console.close()  # the console stops

    settings = console.settings
    reopened = db.connect(settings.db)
    try:
        # the collector sends both again after its own restart: nothing new
        assert notify.enqueue(reopened, POOR, LINK, now + 60) == 0
        assert notify.enqueue(reopened, second, LINK, now + 60) == 0
        receivers.start()
        mailbox.start()
        sender = notify.Sender(settings)
        try:
            assert sender.run_once(now + 60) == 4
            assert sender.run_once(now + 9999) == 0
        finally:
            sender.stop()
    finally:
        reopened.close()
    assert len(receivers.received) == 6 and len(mailbox.mails) == 2
    assert [mail.message["Subject"][-5:] for mail in mailbox.mails] == ["（1 分）", "（2 分）"]


def test_a_database_busy_as_a_message_is_marked_sent_is_waited_for_not_sent_again(
    console: Console, receivers: Robots
):
    for kind in ("dingtalk", "feishu", "email"):
        notify.remove_channel(console.db, console.channel[kind], actor="admin")

    def hold_the_write_lock() -> None:  # longer than SQLite's own wait of 5 s
        other = sqlite3.connect(console.settings.db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(6.5, lambda: (other.execute("COMMIT"), other.close())).start()

    receivers.on_accept = hold_the_write_lock
    receivers.start()
    now = time.time()
    notify.enqueue(console.db, POOR, LINK, now)
    sender = console.sender()
    assert sender.run_once(now) == 1
    assert sender.run_once(now + notify.LEASE_S + 1) == 0
    assert len(receivers.received) == 1
    (row,) = console.outbox()
    assert (row["sent"], row["attempts"]) == (now, 1)


def test_two_senders_on_one_file_send_each_message_once(
    console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.start()
    mailbox.start()
    now = time.time()
    for seq in range(5):
        notify.enqueue(console.db, {**POOR, "seq": seq}, LINK, now)
    senders = [console.sender(), console.sender()]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda s=s: counts.append(s.run_once(now))) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 20
    assert len(receivers.received) == 15 and len(mailbox.mails) == 5


def test_started_it_sends_every_second_by_itself_until_stopped(
    console: Console, receivers: Robots, mailbox: Mailbox
):
    receivers.start()
    mailbox.start()
    sender = console.sender()
    sender.start()
    notify.enqueue(console.db, POOR, LINK, time.time())
    deadline = time.monotonic() + 10
    while len(receivers.received) + len(mailbox.mails) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receivers.kinds() == ["dingtalk", "feishu", "wecom"] and len(mailbox.mails) == 1
    sender.stop()
    notify.enqueue(console.db, {**POOR, "seq": 1}, LINK, time.time())
    time.sleep(1.5)
    assert len(receivers.received) == 3  # stopped: nothing more goes
    with pytest.raises(RuntimeError, match="stopped"):
        sender.run_once(time.time())


# --- the channels ---


@pytest.mark.parametrize(
    ("kind", "target", "secret", "words"),
    [
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "", "webhook is"),
        ("wecom", "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "", "webhook is"),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?token=x", "", "webhook is"),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/", "", "webhook is"),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x y", "", "spaces"),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x", "a\nb", "printable"),
        (
            "wecom",
            "https://qyapi.weixin.qq.com.evil.example/cgi-bin/webhook/send?key=k",
            "",
            "webhook is",
        ),
        ("wecom", "https://qyapi.weixin.qq.com:8443/cgi-bin/webhook/send?key=k", "", "webhook is"),
        ("wecom", "https://u@qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "", "webhook is"),
        ("wecom", "http://127.0.0.1:8086/cgi-bin/webhook/send?key=k", "", "webhook is"),
        (
            "wecom",
            "http://127.0.0.1:8086/cgi-bin/webhook/send/../../../query?key=x&q=DROP%20"
            "DATABASE%20service_quality",
            "",
            "webhook is",
        ),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k&q=x", "", "webhook is"),
        (
            "dingtalk",
            "https://oapi.dingtalk.com/robot/send/%2e%2e/x?access_token=t",
            "",
            "webhook is",
        ),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/a/../../x", "", "webhook is"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "s", "not signed"),
        ("email", "not an address", "", "e-mail address"),
        ("email", "", "secret", "no secret"),
        ("sms", "", "", "one of"),
    ],
)
def test_a_channel_not_as_its_vendor_issues_it_is_refused(
    tmp_path: Path, kind: str, target: str, secret: str, words: str
):
    conn = db.connect(tmp_path / "console.db")
    with pytest.raises(notify.ChannelError, match=words):
        notify.add_channel(conn, SITE, kind, target, secret, actor="admin")
    assert conn.execute("SELECT count(*) FROM channel").fetchone()[0] == 0


def test_channels_are_listed_and_audited_without_their_keys_and_secrets(tmp_path: Path):
    conn = db.connect(tmp_path / "console.db")
    webhook = f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"
    ding = notify.add_channel(conn, SITE, "dingtalk", webhook, DING_SECRET, actor="admin")
    mail = notify.add_channel(conn, SITE, "email", "hall@hall.example", actor="admin")
    assert notify.channels(conn, SITE) == [
        notify.Channel(ding, SITE, "dingtalk", "oapi.dingtalk.com", True),
        notify.Channel(mail, SITE, "email", "hall@hall.example", False),
    ]
    notify.enqueue(conn, POOR, LINK, time.time())
    assert [w.kind for w in notify.waiting(conn, SITE)] == ["dingtalk", "email"]
    notify.remove_channel(conn, ding, actor="admin")  # its messages go with it
    assert [w.kind for w in notify.waiting(conn, SITE)] == ["email"]
    trail = [tuple(row) for row in conn.execute("SELECT * FROM audit")]
    assert [entry[3] for entry in trail] == ["add_channel", "add_channel", "remove_channel"]
    assert_no_secret(trail)
