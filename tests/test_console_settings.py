"""One list of the console's settings: the code's (console/settings.py, DEFAULTS) and
docs/console.md's table name the same ones, in the same order, with the same defaults; the
install guide's environment file and the systemd unit set only settings that exist, and
together make settings the console takes. The queue-system API's JSON Schema in the docs holds
the contract's name rules and takes the documented examples the API takes."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from console import settings
from console.web import api
from firmware import contract

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_MD = (ROOT / "docs" / "console.md").read_text()
UNIT = ROOT / "console" / "svc-console.service"


def documented_table() -> list[tuple[str, str | None]]:
    """docs/console.md's settings table, in order: (variable, default; None where it says
    none)."""
    rows = re.findall(r"^\| `(SVC_CONSOLE_[A-Z_]+)` \| ([^|]+) \|", CONSOLE_MD, re.M)
    return [
        (name, None if cell.strip() == "none" else cell.strip().strip("`")) for name, cell in rows
    ]


def test_the_docs_name_every_setting_with_its_default_in_the_codes_order():
    table = documented_table()
    assert table[0] == ("SVC_CONSOLE_CONFIG", None)
    expected = [(settings.variable(key), default) for key, default in settings.DEFAULTS.items()]
    assert table[1:] == expected


def guide_environment() -> dict[str, str]:
    """The environment file docs/install.md writes, and the unit's own Environment= lines."""
    guide = (ROOT / "docs" / "install.md").read_text()
    [body] = re.findall(r"^cat > /etc/svc-console\.env <<'EOF'\n(.*?)^EOF$", guide, re.M | re.S)
    env = dict(line.split("=", 1) for line in body.splitlines())
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    for spec in unit["Service"]["Environment"].split():
        key, _, value = spec.partition("=")
        env[key] = value
    return env


def test_the_guides_environment_and_the_unit_make_settings_the_console_takes():
    env = guide_environment()
    known = {settings.variable(key) for key in settings.DEFAULTS} | {"SVC_CONSOLE_CONFIG"}
    assert set(env) <= known, set(env) - known
    env.pop("SVC_CONSOLE_CONFIG")  # the broker account file, made on the hall's server
    chosen = settings.from_env(env)
    assert (chosen.host, chosen.port) == ("0.0.0.0", 8443)
    assert chosen.tls_cert is not None and chosen.tls_key is not None
    assert chosen.public_url == "https://console.hall1.example:8443"
    assert chosen.db == Path("/var/lib/svc-console/console.db")


def test_the_unit_runs_the_console_as_its_user_with_its_state_folder():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "svc-console"
    assert service["ExecStart"] == "/opt/svc-rating/.venv/bin/svc-console serve"
    assert service["EnvironmentFile"] == "/etc/svc-console.env"
    assert service["RestartPreventExitStatus"] == "2"  # serve's status on settings it cannot use
    db = Path(guide_environment()["SVC_CONSOLE_DB"])
    assert db.parent == Path("/var/lib") / service["StateDirectory"]


def schema() -> dict[str, object]:
    [block] = re.findall(r"^```json\n(.*?)^```$", CONSOLE_MD, re.M | re.S)
    found: dict[str, object] = json.loads(block)
    return found


def test_the_api_schema_holds_the_contracts_rules():
    properties = schema()["properties"]
    assert isinstance(properties, dict)
    assert set(properties) == set(api.FIELDS)
    for kind in ("counter", "device"):
        assert properties[kind]["pattern"] == f"^{contract.name_pattern(kind)}$"
    ticket = properties["ticket"]
    assert ticket["type"] == ["string", "null"]
    assert (ticket["minLength"], ticket["maxLength"]) == (1, contract.TICKET_MAX)
    assert re.fullmatch(ticket["pattern"], "A023 窗口")  # Python's re reads \u escapes too
    assert not re.fullmatch(ticket["pattern"], "A023\t")


def test_the_documented_requests_are_ones_the_api_takes_and_refuses_as_documented():
    for body in re.findall(r"^(\{\"(?:counter|device)\".*\})$", CONSOLE_MD, re.M):
        assert api._problem(json.loads(body)) is None, body
    assert api._problem({"counter": "03", "device": "ev-a1b2c3d4e5f6"}) == (
        "give either counter or device"
    )
    assert api._problem({"ticket": "A023"}) == "give either counter or device"
