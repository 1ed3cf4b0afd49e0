"""One list of the collector's settings: the code's, docs/collector.md's table and
collector/sample.toml name the same ones, with the same defaults, and the sample is a file the
collector takes."""

from __future__ import annotations

import re
from pathlib import Path

from collector import settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "collector" / "sample.toml"


def documented_table() -> dict[str, str | None]:
    """docs/collector.md's settings table: variable -> default (None where it says none)."""
    text = (ROOT / "docs" / "collector.md").read_text()
    rows = re.findall(r"^\| `(SVC_[A-Z_]+)` \| ([^|]+) \|", text, re.M)
    return {
        name: None if cell.strip() == "none" else cell.strip().strip("`") for name, cell in rows
    }


def sample_lines() -> dict[str, str]:
    """Every `key = value` line of the sample, commented out or not: key -> value's text."""
    found = re.findall(r"^#? ?([a-z_]+) = (\S+)", SAMPLE.read_text(), re.M)
    return {key: value.strip('"') for key, value in found}


def test_the_docs_name_every_setting_with_its_default():
    table = documented_table()
    assert set(table) - {"SVC_CONFIG"} == {settings.variable(k) for k in settings.DEFAULTS}
    for key, default in settings.DEFAULTS.items():
        assert table[settings.variable(key)] == default, key


def test_the_sample_holds_every_setting_and_the_defaults_it_leaves_commented():
    lines = sample_lines()
    assert set(lines) == set(settings.DEFAULTS)
    commented = re.findall(r"^# ([a-z_]+) = (\S+)", SAMPLE.read_text(), re.M)
    for key, value in commented:
        if settings.DEFAULTS[key] is not None:
            assert value.strip('"') == settings.DEFAULTS[key], key


def test_the_sample_is_a_settings_file_the_collector_takes():
    loaded = settings.load({}, SAMPLE)
    assert loaded.mqtt.username == "collector"
    assert loaded.client_id == "svc-collector-1"
    assert loaded.state_dir == Path("/var/lib/svc-collector")
