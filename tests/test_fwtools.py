"""svc-firmware: the .mpy image builds and runs; deploy prints and checks what it would do."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from fwtools import image
from fwtools.unix_port import FIRMWARE_DIR, run_script
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


def boot_and_rate(terminal) -> None:
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected")
        for n in range(1, 4):
            terminal.clerk_key()
            terminal.wait_count("opened", n)
            terminal.press(n)
            terminal.wait_acked(n)
    finally:
        terminal.stop()


def test_the_romfs_image_boots_and_rates_in_a_64_kb_heap(
    tmp_path, mosquitto, collector, micropython, topic_root
):
    """main.py from the file system, every module run in place from the ROM (with the Unix
    board's), in the heap a board's firmware would have: boot, rate, stored, acknowledged."""
    files = image.build(tmp_path / "img", simulation=True)
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    terminal.firmware_dir = tmp_path / "img"
    terminal.rom = image.write_romfs(files, tmp_path / "terminal.romfs")
    terminal.heap = "64K"
    boot_and_rate(terminal)


def test_the_mpy_files_boot_and_rate_from_the_file_system(
    tmp_path, mosquitto, collector, micropython, topic_root
):
    """The image for a board without a ROM partition: .mpy files, copied to the heap as they
    are imported (96 KB on this 64-bit port)."""
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    image.build(tmp_path / "img")
    terminal.firmware_dir = tmp_path / "img"
    terminal.heap = "96K"
    boot_and_rate(terminal)


IMPORT_ALL = FIRMWARE_DIR.parent / "tests" / "mpy" / "import_cost.py"


def test_the_romfs_image_runs_in_place(tmp_path, micropython):
    """From the ROM every module is found at /rom and costs the heap far less than the same
    .mpy files read from a file system: their bytecode stays in the image."""
    files = image.build(tmp_path / "img", simulation=True)
    rom = image.write_romfs(files, tmp_path / "terminal.romfs")
    in_place = run_script(IMPORT_ALL, rom=rom)
    copied = run_script(IMPORT_ALL, image=tmp_path / "img")
    assert in_place.returncode == 0 and copied.returncode == 0, in_place.stderr + copied.stderr
    rom_files, rom_bytes = json.loads(in_place.stdout)
    fs_files, fs_bytes = json.loads(copied.stdout)
    assert all(f.startswith("/rom/") for f in rom_files)
    assert not any(f.startswith("/rom/") for f in fs_files)
    assert rom_bytes < 0.75 * fs_bytes, (rom_bytes, fs_bytes)


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


def test_deploy_to_a_rom_partition_puts_the_modules_there_and_main_on_the_file_system(
    tmp_path,
):
    result = deploy(tmp_path, GOOD, "--romfs", "--dry-run")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.strip().splitlines()
    cmd = shlex.split(line)
    romfs = tmp_path / "img.romfs"
    assert cmd[3:7] == ["romfs", "deploy", str(romfs), "+"]
    assert romfs.read_bytes().startswith(b"\xd2\xcd\x31")  # a ROMFS image
    assert cmd[7] == "exec" and "os.remove" in cmd[8]  # stale .mpy files would shadow /rom
    copied = [cmd[i + 2] for i in range(len(cmd)) if cmd[i : i + 2] == ["fs", "cp"]]
    assert copied == [str(tmp_path / "img" / "main.py"), str(tmp_path / "device.json")]
    assert cmd[-1] == "reset"


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


def test_the_install_guides_settings_file_is_one_a_terminal_starts_with(tmp_path):
    """docs/install.md's example, as a hall's IT person would copy it, given its account by
    the guide's own svc-broker commands."""
    guide = (FIRMWARE_DIR.parent / "docs" / "install.md").read_text()
    [example] = re.findall(r"```json\n(.*?)```", guide, re.S)
    [init] = re.findall(r"^svc-broker init (\S+) (.*)$", guide, re.M)
    [add] = re.findall(r"^ *svc-broker add-device (\S+) (\S+) (\S+) --out (\S+)$", guide, re.M)
    assert add[0] == init[0]  # the same broker folder
    folder, out = tmp_path / "broker", tmp_path / add[3]
    out.write_text(example.replace('"…"', '"secret"'))
    svc_broker = str(SVC_FIRMWARE.parent / "svc-broker")
    for args in (["init", folder, *shlex.split(init[1])], ["add-device", folder, *add[1:3]]):
        extra = ["--out", out] if args[0] == "add-device" else []
        done = subprocess.run(
            [svc_broker, *map(str, args + extra)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    values = json.loads(out.read_text())
    assert values["broker"].startswith("mqtts://") and values["counter"] == "03"
    result = deploy(tmp_path, values, "--dry-run")
    assert result.returncode == 0, result.stderr
