"""docs/install.md, then docs/operations.md, followed as a hall's IT person would: every command
of their `sh` blocks, as written, in order, as root, from `svc-broker init` to a rating a
customer pressed, stored by a collector running as its own unprivileged user and acknowledged
to the terminal, with the hall console serving HTTPS under its own user and its admin logging
in; then the operations page's checks, backups, upgrade, account removal and certificates.

The commands run in a machine of the test's making (tests/guide/sandbox.py says how): the
guide's real paths and fixed ports, in namespaces of their own. The few commands that need
Debian's mirrors, a board on USB or the project's upstream repository are listed in NOT_RUN,
each with its reason; the suite's own set-up (`./dev setup`, run by .ci/run) stands for the
first, and a real firmware instance under the MicroPython Unix port for the board.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console import db as console_db

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = ("install.md", "operations.md")
DEVICE = "ev-a1b2c3d4e5f6"

NOT_RUN = {
    "apt-get update": "Debian's mirrors; `./dev setup`, run by .ci/run, installed the packages",
    "apt-get install -y git curl": "Debian's mirrors; git and curl are on the test's machine",
    "git clone <this repository> /opt/svc-rating": "the checkout under test is /opt/svc-rating",
    "/opt/svc-rating/.venv/bin/pip install esptool": "PyPI, and only for a board on USB",
    "/opt/svc-rating/.venv/bin/esptool.py --chip esp32 --port /dev/ttyUSB0 erase_flash": (
        "an ESP32 on USB"
    ),
    "/opt/svc-rating/.venv/bin/esptool.py --chip esp32 --port /dev/ttyUSB0 write_flash -z 0x1000 "
    "ESP32_GENERIC-<version>.bin": "an ESP32 on USB",
    "git -C /opt/svc-rating pull": "the project's upstream repository",
    "/opt/svc-rating/.venv/bin/svc-firmware publish /root/releases/0.5.0.romfs --site sjz-yuhua "
    "--all --settings /etc/svc-rating/tools.toml --wave 3": (
        "a customer pressing on each terminal's new image, which confirms it: "
        "tests/test_firmware_update.py runs updates with real firmware terminals"
    ),
}
DEPLOY = "svc-firmware deploy --port /dev/ttyUSB0 --settings /root/terminals/ev-hall1-03.json"
# what the person does with the hardware after a command (tests/guide/sandbox.py, Board), by
# the command's start; the deploy is the real one, not its --dry-run
PUBLISH = "XDG_CONFIG_HOME=/root/svc-tools mosquitto_pub"
THEN = {
    DEPLOY + "$": "plugged_in",  # no board on the test's USB: the firmware under the Unix port
    PUBLISH + " -r -q 1 -t 'svc/v1/sjz-yuhua/ev-a1b2c3d4e5f6/config'": "took_config",
    PUBLISH + " -q 1 -t 'svc/v1/sjz-yuhua/ev-a1b2c3d4e5f6/prompt'": "customer_rates",
}
FAILS = {DEPLOY}  # as written, with no board on the port
# what the person types at a command's password prompt, by the command's start
ADMIN_PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "Tr0ub4dor&3 at the counter"
TYPED = {
    "(read -rsp 'Password for admin: '": ADMIN_PASSWORD + "\n",
    "(read -rsp 'New password for admin: '": NEW_PASSWORD + "\n",
}
CONSOLE_URL = "https://console.hall1.example:8443"


def commands(markdown: str) -> list[str]:
    """Each command of the page's `sh` blocks, in order: continuation lines joined, a heredoc
    kept with its command, blank lines and whole-line comments left out."""
    found: list[str] = []
    for block in re.finditer(r"^( *)```sh\n(.*?)^\1```", markdown, re.S | re.M):
        indent = len(block[1])
        lines = [line[indent:] for line in block[2].splitlines()]
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            while line.endswith("\\") and i < len(lines):
                line += "\n" + lines[i]
                i += 1
            heredoc = re.search(r"<<-?'?(\w+)'?", line)
            if heredoc:
                while i < len(lines):
                    line += "\n" + lines[i]
                    i += 1
                    if lines[i - 1].strip() == heredoc[1]:
                        break
            found.append(line)
    return found


def flat(command: str) -> str:
    """A command on one line, its continuations joined."""
    return " ".join(part.rstrip("\\").strip() for part in command.splitlines())


def then(command: str) -> str | None:
    line = flat(command)
    for start, hook in THEN.items():
        if line == start.removesuffix("$") if start.endswith("$") else line.startswith(start):
            return hook
    return None


def typed(command: str) -> str | None:
    return next((text for start, text in TYPED.items() if command.startswith(start)), None)


def plan() -> list[dict[str, Any]]:
    return [
        {
            "command": command,
            "run": flat(command) not in NOT_RUN,
            "fails": flat(command) in FAILS,
            "then": then(command),
            "input": typed(command),
        }
        for page in GUIDES
        for command in commands((DOCS / page).read_text())
    ]


def test_every_command_of_the_guides_is_found_and_every_exception_is_one_of_them():
    steps = plan()
    lines = {flat(s["command"]) for s in steps}
    assert set(NOT_RUN) <= lines, set(NOT_RUN) - lines
    assert lines >= FAILS
    hooks = [s["then"] for s in steps if s["then"]]
    assert hooks == ["plugged_in", "took_config", "customer_rates", "took_config"], hooks
    prompts = [s["input"] for s in steps if s["input"]]  # add-user, the login, set-password
    assert prompts == [ADMIN_PASSWORD + "\n"] * 2 + [NEW_PASSWORD + "\n"], prompts
    assert len(steps) > 40
    heredoc = next(s for s in steps if s["command"].startswith("cat > ev-hall1-03.json"))
    assert heredoc["command"].endswith("EOF") and '"counter": "03"' in heredoc["command"]


def _can_make_a_machine() -> str | None:
    if os.geteuid() != 0:
        return "the guide is written for root"
    for tool in ("unshare", "ip", "mosquitto_pub", "jq", "curl", "ss", "influxd", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (./dev setup installs it)"
    # all that `dev setup` looks for, so that the guide's run of it installs nothing
    if not Path("/usr/sbin/mosquitto").exists() or shutil.which("python3") is None:
        return "mosquitto or python3 is missing (./dev setup installs it)"
    probe = subprocess.run(
        ["unshare", "--pid", "--mount", "--net", "--fork", "true"], capture_output=True, check=False
    )
    if probe.returncode:
        return f"namespaces refused here: {probe.stderr.decode().strip()}"
    return None


@pytest.mark.timeout(600)
def test_a_hall_installs_and_runs_it_from_the_guides_alone(tmp_path: Path):
    why_not = _can_make_a_machine()
    if why_not:
        pytest.skip(why_not)
    (tmp_path / "plan.json").write_text(json.dumps(plan()))
    done = subprocess.run(
        [
            "unshare", "--pid", "--mount", "--net", "--fork", "--kill-child",
            sys.executable, "-m", "tests.guide.sandbox",
            str(tmp_path / "plan.json"), str(tmp_path / "transcript.json"), str(tmp_path),
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        timeout=560,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    transcript = json.loads((tmp_path / "transcript.json").read_text())
    report = json.dumps(transcript, ensure_ascii=False, indent=1)[-12000:]
    errors = [e for e in transcript if "error" in e]
    assert not errors, report
    ran = [e for e in transcript if e.get("ran")]
    steps = {s["command"]: s for s in plan()}
    for entry in ran:
        step = steps[entry["command"]]
        if step["fails"]:
            assert entry["rc"] != 0, report
        else:
            assert entry["rc"] == 0, report
    assert len(ran) == sum(s["run"] for s in plan()), report  # none left out by a failure

    def entry(start: str) -> dict[str, Any]:
        """The command that is `start`, or else the first that begins with it."""
        exact = [e for e in ran if flat(e["command"]) == start]
        return (exact or [e for e in ran if e["command"].startswith(start)])[0]

    def out(start: str) -> str:
        return str(entry(start)["stdout"])

    def err(start: str) -> str:
        return str(entry(start)["stderr"])

    influx = out("ss -ltn | grep -E")
    assert "127.0.0.1:8086" in influx and "127.0.0.1:8088" in influx and "*:8086" not in influx
    broker = out("ss -ltn | grep 8883")
    assert "0.0.0.0:8883" in broker and "1883" not in broker
    assert json.loads(out("curl -s --retry 10"))["status"] == "ok"
    # the collector, run by the unit as its own user, read the CA and roster and stored
    assert '"subscribed"' in out("journalctl -u svc-collector -n 20")
    assert out("ls /var/lib/svc-appraisal/").strip().endswith(".xlsx")
    # no board on the port: one line, naming it
    no_board = err(DEPLOY).strip().splitlines()
    assert len(no_board) == 1 and "/dev/ttyUSB0" in no_board[0], no_board
    assert "Traceback" not in err(DEPLOY)
    assert f"sjz-yuhua/{DEVICE}" in out("journalctl -u mosquitto")
    # the login read back from the terminal's state; a refusal said, with its reason
    state = json.loads(out("XDG_CONFIG_HOME=/root/svc-tools mosquitto_sub"))
    assert state["online"] and state["staff"] == "E1023" and state["counter"] == "03", state
    refused = next(e for e in ran if "/rating' -m '{}'" in e["command"])
    assert refused["stderr"] == "Warning: Publish 1 failed: Not authorized.\n", refused
    # the customer's rating, stored once and shown by the guide's own command
    latest = out("svc-collector --config /etc/svc-collector.toml latest -n 5").splitlines()
    assert len(latest) == 2, latest  # the header and the one rating
    cells = dict(zip(latest[0].split(), latest[1].split()[1:], strict=True))  # date and time
    assert cells["device"] == DEVICE and cells["staff"] == "E1023", latest
    assert (cells["score"], cells["suspect"], cells["counter"]) == ("5", "0", "03"), latest
    assert '"stored"' in out("journalctl -u svc-collector -n 50 --no-pager | grep")
    assert out("jq -r .kind") == ""  # no dead letter, and the file is there to read
    assert out("find /var/lib/svc-collector/spool -name '*.jsonl' -exec cat").strip() == "0"
    restored = json.loads(
        out("curl -s -G 127.0.0.1:8086/query --data-urlencode db=service_quality_check")
    )
    assert restored["results"][0]["series"][0]["values"][0][1] == 1, restored
    assert "notAfter=" in out("openssl x509 -enddate -noout -in /etc/mosquitto/svc/server.crt")
    assert "renewed, valid until" in out("svc-broker renew")
    users = next(e for e in transcript if "processes" in e)["processes"]
    assert re.search(r"^svc-collector\s+.*svc-collector --config", users, re.M), users
    # the console: its unit runs it as its own user, over HTTPS the hall's CA vouches for, on
    # the broker under its account and reading InfluxDB; its admin logs in
    assert re.search(r"^svc-console\s+.*svc-console serve", users, re.M), users
    health = (
        f"curl --cacert /etc/mosquitto/svc/ca.crt -fsS --retry 20 --retry-delay 1 "
        f"--retry-connrefused {CONSOLE_URL}/healthz; echo"
    )
    checks = [e for e in ran if flat(e["command"]) == health]
    assert len(checks) == 3, checks  # installed, restored from its backup, a new certificate
    for check in checks:
        assert json.loads(check["stdout"]) == {"broker": True, "influx": True, "rejected": {}}
    assert json.loads(out("curl --cacert /etc/mosquitto/svc/ca.crt -s " + CONSOLE_URL))["broker"]
    added = next(e for e in ran if "add-user admin --role admin" in e["command"])
    assert (
        added["stdout"]
        .strip()
        .endswith("user admin (admin) added to /var/lib/svc-console/console.db")
    ), added
    login = next(e for e in ran if f"{CONSOLE_URL}/login" in e["command"])
    assert login["stdout"].split() == ["303"], login  # the redirect to the first page
    assert ADMIN_PASSWORD not in json.dumps(transcript)  # read without echo, never printed
    assert '"mqtt_connected"' in out("journalctl -u svc-console -n 20")
    backup = out("/opt/svc-rating/.venv/bin/python -c 'import sqlite3, sys; db =").split()
    assert backup == ["ok", str(len(console_db.MIGRATIONS)), "1", "0"], backup  # 1 user, 0 cases
    assert "any lock lifted" in out("(read -rsp 'New password for admin: '")
    assert "notAfter=" in out("openssl x509 -enddate -noout -in /etc/svc-console/web.crt")
    assert "web.crt and" in out(
        "svc-broker add-web /etc/mosquitto/svc --host console.hall1.example"
    )
