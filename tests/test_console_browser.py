"""The hall console in a real browser (Chromium, driven by Playwright), against the console
started as its own process with the hall's real broker (svc-broker's folder, TLS, accounts),
InfluxDB, collector and the firmware under the MicroPython Unix port."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console_stack import ConsoleStack, keep, log_in
from tests.hall import SITE
from tests.servers import wait_for

pytest_plugins = ["tests.console_stack"]
pytestmark = pytest.mark.xdist_group("browser")  # one Chromium a worker is plenty on 2 cores

SCORE_1 = 4  # the default buttons score 5, 4, 3, 2, 1 from the left


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
