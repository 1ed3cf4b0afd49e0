"""The hall console in a real browser (Chromium, driven by Playwright), against the console
started as its own process with the hall's real broker (svc-broker's folder, TLS, accounts),
InfluxDB, collector and the firmware under the MicroPython Unix port."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import struct
import time
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import requests
from playwright.sync_api import Page, expect

from collector.influx import InfluxHttp
from console import duty
from dashboards import appraisal
from devstack import ConsoleServer
from firmware import contract, protocol
from tests import test_console_notify as notify_tests
from tests.console_stack import ConsoleStack, add_user, keep, log_in
from tests.hall import SITE
from tests.servers import running, wait_for

pytest_plugins = ["tests.console_stack"]

ZONE = ZoneInfo("Asia/Shanghai")
SCORE_1 = 4
ROBOTS = sorted(notify_tests.ROBOTS)  # the default buttons score 5, 4, 3, 2, 1 from the left


def png(width: int = 64, height: int = 64, rgb: tuple[int, int, int] = (30, 110, 200)) -> bytes:
    """A small real PNG, for a clerk's photo."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def rate(terminal, score_button: int, seq: int) -> dict:
    terminal.clerk_key()
    terminal.wait_count("opened", seq)
    terminal.press(score_button)
    return terminal.wait_for(lambda e: e["ev"] == "rated" and e["seq"] == seq)


def test_a_manager_seats_a_clerk_and_follows_a_poor_rating_to_its_close(
    console_stack: ConsoleStack, page: Page, tmp_path: Path
):
    stack = console_stack
    terminal = stack.terminal("t01")
    log_in(page, stack.url, "wang")
    expect(page).to_have_url(f"{stack.url}/hall/{SITE}")  # a manager of one hall: its today
    keep(page, "today-empty")

    # the clerk directory: a new clerk with a photo
    page.goto(f"{stack.url}/clerks")
    page.fill("input[name=staff]", "E2002")
    page.fill("input[name=name]", "李娜")
    photo = tmp_path / "li.png"
    photo.write_bytes(png())
    page.set_input_files("input[name=photo]", str(photo))
    page.click("form[action='/clerks'] button[type=submit]")
    expect(page.locator("td", has_text="李娜")).to_be_visible()
    keep(page, "clerks")

    # the roster: the terminal at counter 01, then 李娜 logged in there
    page.goto(f"{stack.url}/hall/{SITE}/roster")
    form = page.locator(f"form[action='/hall/{SITE}/roster/counter']")
    form.locator("input[name=counter]").fill("01")
    form.locator("select[name=device]").select_option("t01")
    form.locator("button").click()
    seat = page.locator(f"form[action='/hall/{SITE}/roster/seat']").first
    seat.locator("select[name=staff]").select_option("E2002")
    seat.locator("button").click()
    terminal.wait_for(lambda e: e["ev"] == "config" and "staff" in e["changed"], timeout_s=10)

    def seated() -> bool:
        page.goto(f"{stack.url}/hall/{SITE}/roster")
        return "E2002 李娜" in page.locator("td.now").first.inner_text()

    wait_for(seated, lambda ok: ok, timeout_s=10)
    keep(page, "roster")
    # her photo is public while a wall shows her; another clerk's only to the logged in
    page.goto(f"{stack.url}/clerks")
    page.fill("input[name=staff]", "E2003")
    page.fill("input[name=name]", "赵强")
    page.set_input_files("input[name=photo]", str(photo))
    page.click("form[action='/clerks'] button[type=submit]")
    for staff, public in (("E2002", 200), ("E2003", 404)):
        assert requests.get(f"{stack.url}/clerks/{staff}/photo", timeout=10).status_code == public
        assert page.request.get(f"{stack.url}/clerks/{staff}/photo").status == 200

    # the terminal's next rating carries her number; a poor one becomes a case within 5 s
    rated = rate(terminal, SCORE_1, 1)
    assert rated["staff"] == "E2002" and rated["score"] == 1
    pressed = time.monotonic()
    page.goto(f"{stack.url}/cases")
    row = page.locator("tbody tr", has_text="E2002")
    while not row.count() and time.monotonic() - pressed < 5:
        page.reload()
    assert row.count() == 1, "no case within 5 s of the press"
    keep(page, "cases")
    stored = stack.query('SELECT "score", "staff" FROM "rating"')
    assert [(r["staff"], r["score"]) for r in stored] == [("E2002", 1)]

    row.locator("a").first.click()
    for step, note in (("已回访", "已电话回访客户"), ("已整改", "已培训"), ("已关闭", "客户认可")):
        page.fill("textarea[name=note]", note)
        page.click("form[action$='/step'] button")
        expect(page.locator("h1 .state")).to_have_text(step)
    steps = page.locator("ol.steps li")
    expect(steps).to_have_count(3)
    expect(steps.nth(2)).to_contain_text("wang：客户认可")
    keep(page, "case-closed")

    # the today page: nothing open, nothing overdue, the terminal online
    page.goto(f"{stack.url}/hall/{SITE}")
    expect(page.locator("#open")).to_have_text("0")
    expect(page.locator("#offline")).to_have_text("0")
    keep(page, "today")


def publish_rating(peer, device: str, seq: int, ts_ms: int, score: int, **fields) -> None:
    message = contract.rating(
        seq, 1, ts_ms, score, fields.get("reason"), fields.get("counter", "01"),
        fields.get("staff", "E3003"), None, "prompt", fields.get("wait_ms", 4000),
    )  # fmt: skip
    peer.publish(
        contract.topic(contract.ROOT, SITE, device, "rating"), json.dumps(message).encode()
    )


def local_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp() * 1000)


def case_row(page: Page, url: str, staff: str, seq: int, timeout_s: float = 10):
    """The register's row of a case, waited for (the alert or the minute's reconciliation)."""

    def found():
        page.goto(f"{url}/cases?staff={staff}")
        return page.locator("tbody tr", has_text=f"{seq}").count()

    wait_for(found, lambda n: n > 0, timeout_s=timeout_s)
    return page.locator("tbody tr")


def test_a_deadline_across_national_day_and_its_make_up_saturday_is_due_on_the_right_day(
    console_stack: ConsoleStack, page: Page
):
    """Pressed on Wednesday 30 September 2026: 1 to 7 October are the holiday, Saturday 10
    October a make-up working day. The call-back (1 working day) is due on Thursday 8 October;
    the fix (5) on 8, 9, 10 (Saturday), 12, 13: Tuesday 13 October."""
    stack = console_stack
    peer = stack.device_peer("t09")
    publish_rating(peer, "t09", 1, local_ms("2026-09-30T10:00:00"), 1, reason="attitude")
    log_in(page, stack.url, "wang")
    rows = case_row(page, stack.url, "E3003", 1)
    cells = rows.first.locator("td")
    expect(cells.nth(8)).to_have_text("2026-10-08")
    expect(cells.nth(9)).to_have_text("2026-10-13")
    expect(rows.first).to_have_class("late")  # long overdue by December
    keep(page, "cases-national-day")
    peer.close()

    # overdue on the first page the manager sees
    page.goto(f"{stack.url}/hall/{SITE}")
    expect(page.locator("#overdue")).to_have_text("1")
    expect(page.locator(".card.alarm").first).to_contain_text("逾期案件")

    # the register's exports, filtered by hall, clerk, state and month
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    query = {"site": SITE, "staff": "E3003", "state": "open", "month": "2026-09"}
    csv_text = requests.get(f"{stack.url}/cases.csv", params=query, cookies=cookies, timeout=10)
    assert csv_text.status_code == 200 and csv_text.content.startswith("\ufeff".encode())
    header, row = list(csv.reader(io.StringIO(csv_text.content.decode("utf-8-sig"))))
    shown = dict(zip(header, row, strict=True))
    assert (shown["回访期限"], shown["整改期限"], shown["逾期"]) == (
        "2026-10-08",
        "2026-10-13",
        "回访逾期",
    )
    xlsx = requests.get(f"{stack.url}/cases.xlsx", params=query, cookies=cookies, timeout=10)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert ["" if c.value is None else str(c.value) for c in sheet[2]] == row
    elsewhere = requests.get(
        f"{stack.url}/cases.csv", params={**query, "month": "2026-10"}, cookies=cookies, timeout=10
    )
    assert len(list(csv.reader(io.StringIO(elsewhere.content.decode("utf-8-sig"))))) == 1


def clerk_month(stack: ConsoleStack, staff: str) -> tuple[int, ...]:
    """svc-appraisal's December for the clerk in the hall: rated, poor, suspect, excluded."""
    influx = InfluxHttp(stack.influx.url, stack.database)
    rows = appraisal.compute(influx, "2026-12", "Asia/Shanghai", 1)
    (row,) = [r for r in rows if r.site == SITE and r.staff == staff]
    return tuple(row.counts[k] for k in ("rated", "poor", "suspect", "excluded"))


def test_an_upheld_appeal_leaves_the_appraisal_and_a_cleared_suspect_counts_again(
    console_stack: ConsoleStack, page: Page, browser
):
    stack = console_stack
    peer = stack.device_peer("t05")
    base = local_ms("2026-12-01T09:00:00")
    publish_rating(peer, "t05", 1, base, 5, staff="E4004")
    publish_rating(peer, "t05", 2, base + 60_000, 1, staff="E4004", reason="attitude")
    publish_rating(peer, "t05", 3, base + 120_000, 4, staff="E4004", wait_ms=200)  # fast: suspect
    wait_for(
        lambda: stack.query('SELECT count("seq") FROM "rating"'), lambda r: r and r[0]["count"] == 3
    )
    assert clerk_month(stack, "E4004") == (2, 1, 1, 0)

    # the manager appeals the poor rating; the appraiser upholds it
    log_in(page, stack.url, "wang")
    case_row(page, stack.url, "E4004", 2).first.locator("a").first.click()
    page.select_option("select[name=ground]", "malicious")
    page.fill("form[action$='/appeal'] textarea[name=note]", "客户酒后滋事，有录像")
    page.click("form[action$='/appeal'] button")
    expect(page.locator("#appeal")).to_contain_text("待裁定")
    appraiser = browser.new_context(locale="zh-CN").new_page()
    log_in(appraiser, stack.url, "liu")
    appraiser.goto(f"{stack.url}/appeals")
    appraiser.fill("input[name=note]", "录像属实")
    appraiser.click("button[value=upheld]")
    expect(appraiser.locator("tbody tr").first).to_contain_text("申诉成立")
    keep(appraiser, "appeals")
    assert clerk_month(stack, "E4004") == (1, 0, 1, 1)

    # the terminal sends it again: a copy, acknowledged, and the appraisal does not change
    publish_rating(peer, "t05", 2, base + 60_000, 1, staff="E4004", reason="attitude")
    wait_for(lambda: '"copies": 1' in stack.collector.log(), lambda seen: seen, timeout_s=10)
    assert clerk_month(stack, "E4004") == (1, 0, 1, 1)

    # the manager clears the suspect rating: it counts again
    page.goto(f"{stack.url}/suspects/{SITE}")
    row = page.locator("#suspects tbody tr[data-seq='3']")
    row.locator("button[value=cleared]").click()
    expect(page.locator("#suspects tbody tr[data-seq='3']")).to_contain_text("撤销可疑")
    keep(page, "suspects")

    # every step in the audit trail, on its page and in its CSV
    appraiser.goto(f"{stack.url}/audit")
    trail = appraiser.locator("tbody").inner_text()
    for action in ("file_appeal", "decide_appeal", "review_suspect", "log_in"):
        assert action in trail
    keep(appraiser, "audit")
    cookies = {c["name"]: c["value"] for c in appraiser.context.cookies()}
    exported = requests.get(f"{stack.url}/audit.csv", cookies=cookies, timeout=10)
    assert "decide_appeal" in exported.content.decode("utf-8-sig")
    page.goto(f"{stack.url}/audit")  # a manager: not theirs to read
    expect(page.locator(".error")).to_contain_text("角色")
    assert clerk_month(stack, "E4004") == (2, 0, 0, 1)
    peer.close()


def test_a_queue_system_opens_a_rating_window_with_its_halls_token(
    console_stack: ConsoleStack, page: Page
):
    stack = console_stack
    terminal = stack.terminal("t02")
    log_in(page, stack.url, "wang")
    page.goto(f"{stack.url}/hall/{SITE}/roster")
    form = page.locator(f"form[action='/hall/{SITE}/roster/counter']")
    form.locator("input[name=counter]").fill("03")
    form.locator("select[name=device]").select_option("t02")
    form.locator("button").click()
    page.goto(f"{stack.url}/hall/{SITE}/settings")
    page.click(f"form[action='/hall/{SITE}/settings/token'] button")
    token = page.locator("#token").inner_text().strip()
    keep(page, "token")
    prompt = f"{stack.url}/api/v1/prompt"
    answer = requests.post(
        prompt, json={"counter": "03", "ticket": "A023"},
        headers={"Authorization": f"Bearer {token}"}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"site": SITE, "device": "t02", "counter": "03", "ticket": "A023"}
    opened = terminal.wait_for(lambda e: e["ev"] == "opened", timeout_s=10)
    assert opened["ticket"] == "A023"

    # the terminals page: online, its firmware; a test prompt opens a window too
    page.goto(f"{stack.url}/hall/{SITE}/terminals")
    row = page.locator("#terminals tbody tr", has_text="t02")
    expect(row).to_contain_text("在线")
    expect(row).to_contain_text(protocol.FW_VERSION)
    row.locator("button").click()
    expect(page.locator(".notice")).to_contain_text("t02")
    terminal.wait_count("opened", 2, timeout_s=10)
    assert terminal.of_kind("opened")[1]["ticket"] == "测试"
    keep(page, "terminals")

    # refused, each with its reason, and nothing published
    for body, headers, status in (
        ({"counter": "03"}, {"Authorization": "Bearer not-the-token"}, 401),
        ({"counter": "03"}, {}, 401),
        ({"counter": "99"}, {"Authorization": f"Bearer {token}"}, 404),
        ({"counter": "03", "device": "t02"}, {"Authorization": f"Bearer {token}"}, 400),
        ({"counter": "03", "ticket": "x" * 40}, {"Authorization": f"Bearer {token}"}, 400),
        ({"counter": "03", "extra": 1}, {"Authorization": f"Bearer {token}"}, 400),
    ):
        answer = requests.post(prompt, json=body, headers=headers, timeout=10)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]
    answer = requests.post(
        prompt, data=b"{not json", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]
    # a terminal that is not online: no window opened late for a customer long gone
    stack.hall.add_device(SITE, "t99")

    def listed() -> int:  # the console reads the broker's roster again within a second
        page.goto(f"{stack.url}/hall/{SITE}/roster")
        return form.locator("option:text-is('t99')").count()

    wait_for(listed, lambda n: n > 0, timeout_s=10)
    form.locator("input[name=counter]").fill("04")
    form.locator("select[name=device]").select_option("t99")
    form.locator("button").click()
    answer = requests.post(
        prompt, json={"counter": "04"}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 409 and "offline" in answer.json()["error"]
    time.sleep(1)
    assert len(terminal.of_kind("opened")) == 2


def test_refusals_each_with_a_clear_page_and_nothing_changed(
    console_stack: ConsoleStack, page: Page
):
    stack = console_stack
    url = stack.url
    # without a login: every page leads to the login, but the wall and the health check
    for path in ("/", f"/hall/{SITE}", "/cases", "/appeals", "/audit", f"/hall/{SITE}/roster"):
        page.goto(url + path)
        expect(page).to_have_url(re.compile(r"/login\?next="))
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    posted = requests.post(f"{url}/clerks", data={"staff": "E9", "name": "x"}, timeout=10)
    assert posted.status_code == 401

    # a manager of another hall, by URL too
    log_in(page, url, "zhao")
    for path in (
        f"/hall/{SITE}",
        f"/hall/{SITE}/roster",
        f"/suspects/{SITE}",
        f"/cases?site={SITE}",
    ):
        page.goto(url + path)
        expect(page.locator(".error")).to_contain_text("不是您管理的营业厅")
    keep(page, "refused-other-hall")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    seat = requests.post(
        f"{url}/hall/{SITE}/roster/seat", data={"csrf": csrf, "counter": "01", "staff": "E1"},
        cookies=cookies, timeout=10,
    )  # fmt: skip
    assert seat.status_code == 403 and "不是您管理的营业厅" in seat.text

    # a form without its CSRF token, or another session's
    clerk = {"staff": "E7007", "name": "周"}
    for token in (None, "forged"):
        form = clerk if token is None else {**clerk, "csrf": token}
        answer = requests.post(f"{url}/clerks", data=form, cookies=cookies, timeout=10)
        assert answer.status_code == 403 and "CSRF" in answer.text
    # oversize and malformed fields
    for form, status, words in (
        ({"csrf": csrf, "staff": "E7007", "name": "周" * 40}, 400, "最多"),
        ({"csrf": csrf, "staff": "E 7007", "name": "周"}, 400, "格式不对"),
        ({"csrf": csrf, "staff": "E7007", "name": "周\x07"}, 400, "控制字符"),
        ({"csrf": csrf, "staff": "E7007"}, 400, "请填写"),
    ):
        answer = requests.post(f"{url}/clerks", data=form, cookies=cookies, timeout=10)
        assert answer.status_code == status and words in answer.text, (form, answer.text[-300:])
    huge = requests.post(
        f"{url}/clerks", data={"csrf": csrf, "name": "x" * 2_000_000}, cookies=cookies, timeout=10
    )
    assert huge.status_code == 413
    page.goto(f"{url}/clerks")
    expect(page.locator("td", has_text="E7007")).to_have_count(0)

    # odd ids, months and numbers: a refusal each, never an error of the console's own
    wang = page.context.browser.new_context(locale="zh-CN").new_page()
    log_in(wang, url, "wang")
    cookies = {c["name"]: c["value"] for c in wang.context.cookies()}
    csrf = wang.locator("input[name=csrf]").first.get_attribute("value")
    for path in (
        "/cases/99999999999999999999", "/cases/\uff11\uff12", "/cases/-1", "/cases?month=0000-01",
        "/cases.csv?month=9999-12", f"/suspects/{SITE}?month=0999-12", "/wall/Bad%20Hall",
        f"/wall/{SITE}?month=0000-01", "/cases.pdf", f"/hall/{SITE.upper()}",
    ):  # fmt: skip
        answer = requests.get(url + path, cookies=cookies, timeout=10)
        assert answer.status_code in (400, 403, 404), (path, answer.status_code)
    for seq in ("0", "9223372036854775808", "\uff11\uff12", "x"):
        answer = requests.post(
            f"{url}/suspects/{SITE}", cookies=cookies, timeout=10,
            data={"csrf": csrf, "device": "t01", "seq": seq, "verdict": "cleared"},
        )  # fmt: skip
        assert answer.status_code == 400, (seq, answer.text[-200:])
    answer = requests.post(  # a rating not stored: nothing to clear, nothing kept for later
        f"{url}/suspects/{SITE}", cookies=cookies, timeout=10,
        data={"csrf": csrf, "device": "t01", "seq": "12", "verdict": "cleared"},
    )  # fmt: skip
    assert answer.status_code == 409 and "尚未入库" in answer.text
    # a terminal's own retained state, odd: the terminals page still shows
    peer = stack.device_peer("t13")
    state = {"v": 1, "online": True, "stuck_keys": 3, "fw": ["x"], "staff": "E 1"}
    peer.publish(
        contract.topic(contract.ROOT, SITE, "t13", "state"), json.dumps(state).encode(), retain=True
    )
    time.sleep(1)
    answer = requests.get(f"{url}/hall/{SITE}/terminals", cookies=cookies, timeout=10)
    assert answer.status_code == 200 and "t13" in answer.text
    peer.close()
    assert "page_failed" not in stack.console.log_path.read_text()
    wang.context.close()

    # a sixth wrong password in a row: the account is locked, the right one refused too
    context = page.context.browser.new_context(locale="zh-CN")
    other = context.new_page()
    for _ in range(5):
        log_in(other, url, "wang", "not the password")
        expect(other.locator(".error")).to_be_visible()
    log_in(other, url, "wang")
    expect(other.locator(".error")).to_contain_text("锁定")
    keep(other, "refused-locked")
    context.close()


def half_stars(scores: list[int]) -> float:
    """The mean score to the nearest half star, halves up, in whole numbers."""
    return (4 * sum(scores) // len(scores) + 1) // 2 / 2


def test_the_wall_shows_each_clerks_stars_for_a_known_month(
    known_month, mosquitto, influxdb, tmp_path: Path, page: Page
):
    """November of the known month, against its ground truth: each clerk of the hall with
    their honest ratings' mean score as stars, and no stars under the minimum sample."""
    km = known_month
    zone = ZoneInfo("Asia/Shanghai")
    start = dt.datetime(2026, 11, 1, tzinfo=zone).timestamp() * 1000
    after = dt.datetime(2026, 12, 1, tzinfo=zone).timestamp() * 1000
    scores: dict[str, list[int]] = {}
    for r in km.honest():
        if r["site"] == km.hall and r["staff"] and r["score"] and start <= r["ts"] < after:
            scores.setdefault(r["staff"], []).append(r["score"])
    min_ratings = sorted(len(s) for s in scores.values())[len(scores) // 2]  # some under it
    server = ConsoleServer(
        tmp_path / "console", mqtt_url=mosquitto.url, influx_url=influxdb.url,
        influx_db=km.database, min_ratings=str(min_ratings),
    )  # fmt: skip
    (tmp_path / "console").mkdir()
    add_user(Path(server.settings["db"]), "admin", "admin", [])
    with running(server):
        log_in(page, server.url, "admin")
        page.goto(f"{server.url}/hall/{km.hall}/settings")
        page.fill("input[name=name]", "裕华路营业厅")
        page.click(f"form[action='/hall/{km.hall}/settings/hall'] button")
        page.context.clear_cookies()  # the wall needs no login
        page.goto(f"{server.url}/wall/{km.hall}?month=2026-11")
        keep(page, "wall")
        cards = page.locator("article.counter")
        shown = {
            cards.nth(i).get_attribute("data-staff"): (
                int(cards.nth(i).get_attribute("data-rated")),
                cards.nth(i).locator(".stars").get_attribute("data-stars"),
            )
            for i in range(cards.count())
        }
        expected = {
            staff: (len(s), str(half_stars(s)) if len(s) >= min_ratings else "")
            for staff, s in scores.items()
        }
        assert shown == expected
        assert any(stars == "" for _, stars in expected.values())  # one under the sample
        expect(page.locator("h1")).to_contain_text("裕华路营业厅")
        assert "差评" not in page.content() and "A0" not in page.locator("main").inner_text()


def test_notifications_reach_every_robot_and_the_mail_once_across_an_outage_and_a_restart(
    console_stack: ConsoleStack, page: Page, tmp_path: Path
):
    stack = console_stack
    certs = notify_tests.certificates(tmp_path / "pki")
    robots, mailbox = notify_tests.Robots(), notify_tests.Mailbox(certs.cert, certs.key)
    robots.start()
    mailbox.start()
    stack.console.settings.update(
        smtp_url=f"smtp://{notify_tests.MAIL_USER}:a%20mail%20password@127.0.0.1:{mailbox.port}",
        smtp_ca_file=str(certs.ca),
        webhook_relays=robots.netloc,
    )
    stack.console.restart()
    try:
        log_in(page, stack.url, "wang")
        page.goto(f"{stack.url}/hall/{SITE}/settings")
        today = (dt.datetime.now(ZONE).date() - duty.ROTA_ANCHOR).days  # a person a day
        people = ["李娜, li.na@hall.example, +8613900000002", "张伟, zhang.wei@hall.example"]
        page.fill("textarea[name=rota]", "\n".join(people[today % 2 :] + people[: today % 2]))
        page.click(f"form[action='/hall/{SITE}/settings/rota'] button")
        for kind, secret in (
            ("wecom", ""),
            ("dingtalk", notify_tests.DING_SECRET),
            ("feishu", notify_tests.FEISHU_SECRET),
            ("email", ""),
        ):
            form = page.locator(f"form[action='/hall/{SITE}/settings/channel']")
            form.locator("select[name=kind]").select_option(kind)
            form.locator("input[name=target]").fill("" if kind == "email" else robots.webhook(kind))
            form.locator("input[name=secret]").fill(secret)
            form.locator("button").click()
        expect(page.locator("h2", has_text="带班轮值")).to_contain_text("李娜")
        keep(page, "settings")

        peer = stack.device_peer("t07")
        publish_rating(peer, "t07", 1, local_ms("2026-12-07T10:00:00"), 1, reason="attitude")
        wait_for(lambda: (robots.kinds(), len(mailbox.mails)), lambda n: n == (ROBOTS, 1))
        text = json.dumps([body for _, body in robots.received], ensure_ascii=False)
        assert "http://console.test/cases/1" in text and "李娜" in text
        assert mailbox.mails[0].rcpt == ["li.na@hall.example"]

        # the receivers down a while, and the console restarted meanwhile: each message once
        robots.stop()
        mailbox.stop()
        publish_rating(peer, "t07", 2, local_ms("2026-12-07T10:05:00"), 2, reason="efficiency")
        waiting = f"{stack.url}/hall/{SITE}/settings"

        def stuck() -> int:
            page.goto(waiting)
            return page.locator("h2", has_text="待发送通知").count()

        wait_for(stuck, lambda n: n == 1, timeout_s=15)
        keep(page, "settings-waiting")
        stack.console.restart()
        robots.start()
        mailbox.start()
        twice = (sorted(ROBOTS * 2), 2)
        wait_for(lambda: (robots.kinds(), len(mailbox.mails)), lambda n: n == twice, timeout_s=40)
        time.sleep(3)
        assert robots.kinds() == sorted(ROBOTS * 2) and len(mailbox.mails) == 2
        peer.close()
    finally:
        robots.stop()
        mailbox.stop()


def test_one_clerk_one_counter_and_nothing_made_later_while_the_broker_is_down(
    console_stack: ConsoleStack, page: Page
):
    stack = console_stack
    first, second = stack.terminal("t11"), stack.terminal("t12")
    log_in(page, stack.url, "wang")
    page.goto(f"{stack.url}/clerks")
    page.fill("input[name=staff]", "E5005")
    page.fill("input[name=name]", "孙丽")
    page.click("form[action='/clerks'] button[type=submit]")
    roster_url = f"{stack.url}/hall/{SITE}/roster"

    def put(counter: str, device: str) -> None:
        page.goto(roster_url)
        form = page.locator(f"form[action='/hall/{SITE}/roster/counter']")
        form.locator("input[name=counter]").fill(counter)
        form.locator("select[name=device]").select_option(device)
        form.locator("button").click()

    def seat(counter: str, staff: str) -> None:
        page.goto(roster_url)
        form = page.locator(f"tr:has(td:text-is('{counter}')) form").first
        form.locator("select[name=staff]").select_option(staff)
        form.locator("button").click()

    put("01", "t11")
    put("02", "t12")
    seat("01", "E5005")
    first.wait_for(lambda e: e["ev"] == "config" and "staff" in e["changed"], timeout_s=10)
    seat("02", "E5005")  # she moves to 02: logged out at 01 first
    second.wait_for(lambda e: e["ev"] == "config" and "staff" in e["changed"], timeout_s=10)
    assert rate(second, 0, 1)["staff"] == "E5005"
    assert rate(first, 0, 1)["staff"] is None  # nobody at 01 now

    # the terminal at 02 moves to 03: it takes the counter and keeps its clerk
    put("03", "t12")
    second.wait_for(lambda e: e["ev"] == "config" and e["changed"] == ["counter"], timeout_s=10)
    moved = rate(second, 0, 2)
    assert (moved["counter"], moved["staff"]) == ("03", "E5005")

    # the broker down: a login is refused, and never made once the broker is back
    stack.hall.broker.stop()
    wait_for(lambda: requests.get(f"{stack.url}/healthz", timeout=5).json()["broker"],
             lambda up: not up, timeout_s=15)  # fmt: skip
    seat("01", "E5005")
    expect(page.locator(".error")).to_contain_text("未做更改")
    stack.hall.broker.restart()
    first.wait_count("connected", 2, timeout_s=30)
    time.sleep(2)
    assert rate(first, 0, 2)["staff"] is None
    page.goto(roster_url)
    keep(page, "roster-moves")
