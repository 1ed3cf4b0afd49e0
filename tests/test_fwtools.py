"""svc-firmware: the .mpy image builds and runs; deploy prints and checks what it would do."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from fwtools import image
from simulator.firmware import FIRMWARE_DIR
from tests.terminals import make_terminal

SVC_FIRMWARE = Path(sys.executable).parent / "svc-firmware"


def test_the_image_has_every_device_module_compiled(tmp_path):
    files = image.build(tmp_path / "img")
    names = {p.name for p in files}
    assert "main.py" in names and "board_esp32.mpy" in names and "terminal.mpy" in names
    assert not names & {"board_unix.mpy", "simflash.mpy", "board_unix.py"}
    expected = {p.stem for p in FIRMWARE_DIR.glob("*.py")} - {"board_unix", "simflash"}
    assert {Path(n).stem for n in names} == expected
    for path in files:
        if path.suffix == ".mpy":
            assert path.read_bytes()[:1] == b"M"


def test_the_image_as_it_ships_boots_and_rates_in_a_small_heap(
    tmp_path, mosquitto, collector, micropython, topic_root
):
    """The .mpy files, with the Unix board from the sources, in a 112 KB heap: they boot, rate
    and see the rating stored and acknowledged, like the sources."""
    firmware = tmp_path / "img"
    image.build(firmware)
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    terminal.firmware_dir = firmware
    terminal.heap = "112K"
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        terminal.clerk_key()
        terminal.wait_count("opened", 1)
        terminal.press(0)
        terminal.wait_acked(1)
    finally:
        terminal.stop()


def deploy(tmp_path, settings: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "device.json"
    path.write_text(json.dumps(settings))
    return subprocess.run(
        [
            str(SVC_FIRMWARE),
            "deploy",
            "--port",
            "/dev/ttyUSB7",
            "--settings",
            str(path),
            "--out",
            str(tmp_path / "img"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


GOOD = {
    "site": "sjz-yuhua",
    "device": "ev-a1b2c3d4e5f6",
    "broker": "mqtt://dev:pw@10.0.0.2",
    "wifi_ssid": "hall",
    "wifi_password": "secret",
}


def test_deploy_dry_run_prints_the_exact_commands(tmp_path):
    result = deploy(tmp_path, GOOD, "--dry-run")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.strip().splitlines()
    cmd = shlex.split(line)
    assert Path(cmd[0]).name == "mpremote"
    assert cmd[1:3] == ["connect", "/dev/ttyUSB7"]
    img = tmp_path / "img"
    copied = [cmd[i + 2] for i in range(len(cmd)) if cmd[i : i + 2] == ["fs", "cp"]]
    assert copied == [str(p) for p in sorted(img.iterdir())] + [str(tmp_path / "device.json")]
    assert cmd[-4:] == [str(tmp_path / "device.json"), ":settings.json", "+", "reset"]


def test_deploy_refuses_settings_a_terminal_could_not_start_with(tmp_path):
    for bad, why in (
        ({**GOOD, "site": "Yuhua Hall"}, "site"),
        ({**GOOD, "broker": "tcp://10.0.0.2"}, "mqtt://"),
        ({k: v for k, v in GOOD.items() if k != "wifi_ssid"}, "wifi_ssid"),
    ):
        result = deploy(tmp_path, bad, "--dry-run")
        assert result.returncode == 2
        assert why in result.stderr
        assert not result.stdout
