"""The terminal's config: checked field by field, merged, saved, kept across reboots."""

from __future__ import annotations

import json

import pytest

from fwtools.unix_port import firmware_module

config = firmware_module("config")


def test_defaults_then_settings_then_saved(tmp_path):
    path = str(tmp_path / "config.json")
    first = config.Config(path, {"counter": "03", "site": "ignored-here"})
    assert first["counter"] == "03" and first["mode"] == "prompt" and first["window_s"] == 10
    assert first.apply({"v": 1, "staff": "E1023", "window_s": 15}) == ["staff", "window_s"]
    again = config.Config(path, {"counter": "03"})
    assert (again["staff"], again["window_s"]) == ("E1023", 15)
    assert json.loads((tmp_path / "config.json").read_text())["staff"] == "E1023"


def test_unchanged_values_do_not_write(tmp_path):
    path = tmp_path / "config.json"
    current = config.Config(str(path), {})
    assert current.apply({"mode": "prompt"}) == []
    assert not path.exists()


def test_unknown_fields_are_ignored_and_null_staff_logs_out(tmp_path):
    current = config.Config(str(tmp_path / "c.json"), {"staff": "E1"})
    assert current.apply({"v": 1, "staff": None, "theme": "dark"}) == ["staff"]
    assert current["staff"] is None


@pytest.mark.parametrize(
    "message",
    [
        {"v": 2, "counter": "03"},
        {"counter": "03 "},
        {"counter": "123456789"},
        {"staff": "E-1023!"},
        {"staff_name": "x" * 33},
        {"mode": "always"},
        {"window_s": "10"},
        {"window_s": 1},
        {"window_s": True},
        {"buttons": [5, 4]},
        {"buttons": [5, 4, 3, 2, 1, 1]},
        {"buttons": [5, 4, 6]},
        {"buttons": "5,4,3"},
        {"ask_reason": 1},
        {"telemetry_s": 0},
        {"lockout_s": -1},
        [1, 2],
        None,
    ],
)
def test_a_bad_message_changes_nothing(tmp_path, message):
    current = config.Config(str(tmp_path / "c.json"), {"counter": "03"})
    before = dict(current.values)
    with pytest.raises(config.ConfigError):
        current.apply({"counter": "09", **message} if isinstance(message, dict) else message)
    assert current.values == before


def test_a_bad_saved_file_falls_back_to_settings(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"window_s": "broken"')
    assert config.Config(str(path), {"window_s": 20})["window_s"] == 20


def test_a_config_that_cannot_be_saved_is_in_use_and_saved_with_the_next_message(tmp_path):
    folder = tmp_path / "gone"
    current = config.Config(str(folder / "c.json"), {})
    with pytest.raises(OSError):
        current.apply({"v": 1, "staff": "E2002"})
    assert current["staff"] == "E2002"  # in use all the same
    folder.mkdir()
    assert current.apply({"v": 1, "staff": "E2002"}) == []  # the retained config again
    assert json.loads((folder / "c.json").read_text())["staff"] == "E2002"
