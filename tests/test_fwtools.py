"""svc-firmware: the .mpy image builds and runs; deploy prints and checks what it would do."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from broker import credentials
from broker.folder import init
from fwtools import cli, image
from fwtools import deploy as fw_deploy
from fwtools.unix_port import FIRMWARE_DIR, run_script
from tests.terminals import make_terminal

SVC_FIRMWARE = Path(sys.executable).parent / "svc-firmware"


def test_the_image_has_every_device_module_compiled(tmp_path):
    files = image.build(tmp_path / "img")
    names = {p.name for p in files}
    assert {"main.py", "slots.py", "board_esp32.mpy", "terminal.mpy"} <= names  # loader: source
    assert not names & {"board_unix.mpy", "simflash.mpy", "simboot.mpy", "board_unix.py"}
    simulation = {"board_unix", "simflash", "simboot", "simrom"}
    expected = {p.stem for p in FIRMWARE_DIR.glob("*.py")} - simulation
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
    are imported (96 KB on this 64-bit port; the simulated board's modules compiled too, as
    the hardware they stand for costs a board's heap nothing)."""
    terminal = make_terminal(tmp_path / "t", mosquitto, topic_root)
    image.build(tmp_path / "img", simulation=True)
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


def deploy(
    tmp_path, settings: dict, *extra: str, port: str = "/dev/ttyUSB7"
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "device.json"
    path.write_text(json.dumps(settings))
    return subprocess.run(
        [
            str(SVC_FIRMWARE),
            "deploy",
            "--port",
            port,
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
    assert "slot.json" in cmd[8]  # an image an update wrote would run instead
    copied = [cmd[i + 2] for i in range(len(cmd)) if cmd[i : i + 2] == ["fs", "cp"]]
    img = tmp_path / "img"
    assert copied == [str(img / "main.py"), str(img / "slots.py"), str(tmp_path / "device.json")]
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
    # a ```json block, or a here-document that writes the file
    [example] = re.findall(r"```json\n(.*?)```", guide, re.S) or re.findall(
        r"^ *cat > \S+\.json <<'EOF'\n(.*?)^ *EOF$", guide, re.S | re.M
    )
    [init] = re.findall(r"^svc-broker init (\S+) (.*)$", guide, re.M)
    [add] = re.findall(r"^ *svc-broker add-device (\S+) (\S+) (\S+) --out (\S+)$", guide, re.M)
    assert add[0] == init[0]  # the same broker folder
    folder, out = tmp_path / "broker", tmp_path / Path(add[3]).name  # the guide: /root/...
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


TLS_ACCOUNT = {
    "broker": "mqtts://broker.hall1",
    "broker_user": "sjz-yuhua/ev-a1b2c3d4e5f6",
    "broker_password": "pw",
    "broker_ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


@pytest.mark.parametrize(
    "changes, setting",
    [
        ({**TLS_ACCOUNT, "broker": "mqtts://h:abc"}, "broker"),
        ({"broker": "mqtt://dev:pw@10.0.0.2:99999999"}, "broker"),
        ({"broker": "mqtt://dev:pw@10.0.0.2:0"}, "broker"),
        ({**TLS_ACCOUNT, "broker_ca": 7}, "broker_ca"),
        (
            {**TLS_ACCOUNT, "broker_ca": TLS_ACCOUNT["broker_ca"].replace("MIIB", "MIIBx")},
            "broker_ca",
        ),
        ({"wifi_ssid": ["hall"]}, "wifi_ssid"),
        ({"wifi_ssid": True}, "wifi_ssid"),
        ({"wifi_password": 1234}, "wifi_password"),
        ({"keepalive_s": "x"}, "keepalive_s"),
        ({"keepalive_s": 70000}, "keepalive_s"),
        ({"keepalive_s": 30.0}, "keepalive_s"),
        ({"broker_user": {"name": "dev"}}, "broker_user"),
        ({"broker_password": ["pw"]}, "broker_password"),
        ({"topic_root": 7}, "topic_root"),
        ({"ntp_host": None}, "ntp_host"),
        ({"queue_bytes": 0}, "queue_bytes"),
        ({"reconnect_max_s": True}, "reconnect_max_s"),
        ({"clerk_key": "yes"}, "clerk_key"),
    ],
)
def test_a_setting_of_the_wrong_type_or_range_is_refused_in_one_line(tmp_path, changes, setting):
    """A review of deploy: these gave a traceback, or were copied to a board that would fail
    on them after boot (a Wi-Fi name that is a list, a keepalive that is text...)."""
    result = deploy(tmp_path, {**GOOD, **changes}, "--dry-run")
    assert result.returncode == 2 and not result.stdout
    [line] = result.stderr.splitlines()
    prefix = f"svc-firmware: {tmp_path / 'device.json'}: "
    assert line.startswith(prefix + setting) and "Traceback" not in result.stderr
    assert "pw" not in line.removeprefix(prefix)  # no secret shown
    assert not (tmp_path / "img").exists()


# What a hall's IT person writes before `svc-broker add-device` (docs/install.md, section 5).
HALL_ONLY = {"wifi_ssid": "hall", "wifi_password": "secret", "counter": "03", "voice_module": True}


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty current folder, the settings file beside it, and a temporary folder of the
    test's own: what a deploy leaves anywhere there shows."""
    (tmp_path / "here").mkdir()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "hall").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


def settings_file(folder: Path, values: dict) -> Path:
    path = folder / "hall" / "ev-hall1-03.json"
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize("extra", [[], ["--romfs"]])
def test_a_dry_run_writes_nothing_and_prints_the_command(here, capfd, extra):
    """Issue #19: the dry run left the built image behind in the current folder."""
    settings = settings_file(here, GOOD)
    before = files_under(here)
    argv = ["deploy", "--port", "/dev/ttyUSB0", "--settings", str(settings), "--dry-run"]
    assert cli.main(argv + extra) == 0
    out, err = capfd.readouterr()
    assert not err
    assert files_under(here) == before  # nothing new in the current folder, nor anywhere else
    assert not any((here / "here").iterdir()) and not any((here / "tmp").iterdir())
    [line] = out.strip().splitlines()
    cmd = shlex.split(line)
    assert Path(cmd[0]).name == "mpremote" and cmd[1:3] == ["connect", "/dev/ttyUSB0"]
    copied = [cmd[i + 2] for i in range(len(cmd)) if cmd[i : i + 2] == ["fs", "cp"]]
    assert copied[-1] == str(settings) and cmd[-1] == "reset"
    expected = image.BOOT_FILES if extra else {p.name for p in image.image_sources()}
    assert {Path(p).stem for p in copied[:-1]} == {Path(n).stem for n in expected}


NO_BOARD_CHECKS = ("cable", "ls /dev/ttyUSB* /dev/ttyACM*", "dialout", "other program")


def test_deploy_to_a_port_that_does_not_exist_says_so_in_one_line(tmp_path):
    result = deploy(tmp_path, GOOD, port="/dev/ttyNOPE")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "/dev/ttyNOPE" in line and "no such port" in line
    assert all(check in line for check in NO_BOARD_CHECKS), line
    assert "Traceback" not in result.stderr and not result.stdout
    assert not (tmp_path / "img").exists()  # refused before anything is built


def no_board_line(capfd, port: str) -> str:
    out, err = capfd.readouterr()
    [line] = err.splitlines()
    assert port in line and all(check in line for check in NO_BOARD_CHECKS), line
    assert "Traceback" not in err and not out
    return line


def test_deploy_to_a_port_that_is_no_board_says_so_in_one_line(here, capfd, monkeypatch):
    """A character device no serial port (/dev/null), and a terminal with nothing behind it
    (a pseudo-terminal's, on which mpremote would wait for ever): one line, in bounded time."""
    settings = str(settings_file(here, GOOD))
    assert cli.main(["deploy", "--port", "/dev/null", "--settings", settings]) == 2
    assert "cannot be opened" in no_board_line(capfd, "/dev/null")
    monkeypatch.setattr(fw_deploy, "PROBE_TIMEOUT_S", 3)
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        started = time.monotonic()
        assert cli.main(["deploy", "--port", port, "--settings", settings]) == 2
        assert time.monotonic() - started < 20
    finally:
        os.close(master)
        os.close(slave)
    assert "no MicroPython REPL answered" in no_board_line(capfd, port)
    assert not any((here / "here").iterdir()) and not any((here / "tmp").iterdir())


FAKE_MPREMOTE = """#!{python}
import sys
with open({log!r}, "a") as log:
    log.write(repr(sys.argv[1:]) + "\\n")
if sys.argv[3:] == ["eval", "1"]:
    print(1)
    sys.exit(0)
print("cp main.py :main.py")
if {fail!r}:
    raise OSError(5, "Input/output error")
"""


def fake_mpremote(folder: Path, monkeypatch, fail: bool) -> Path:
    """An mpremote that answers the probe, then copies (or fails to), and logs its runs."""
    log, fake = folder / "mpremote.log", folder / "mpremote"
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, log=str(log), fail=fail))
    fake.chmod(0o755)
    monkeypatch.setattr(fw_deploy, "mpremote", lambda: str(fake))
    return log


def deploy_on_a_pty(settings: Path) -> tuple[str, int]:
    """svc-firmware deploy to a pseudo-terminal, a character device standing for the board's
    port; its name and the exit code."""
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        return port, cli.main(["deploy", "--port", port, "--settings", str(settings)])
    finally:
        os.close(master)
        os.close(slave)


def test_a_deploy_probes_the_board_then_runs_the_command_it_prints(here, capfd, monkeypatch):
    log = fake_mpremote(here / "hall", monkeypatch, fail=False)
    port, code = deploy_on_a_pty(settings_file(here, GOOD))
    assert code == 0
    out, err = capfd.readouterr()
    assert not err
    printed, progress = out.splitlines()
    assert progress == "cp main.py :main.py"
    probe, run = (eval(line) for line in log.read_text().splitlines())
    assert probe == ["connect", port, "eval", "1"]
    assert run == shlex.split(printed)[1:]
    assert not any((here / "here").iterdir()) and not any((here / "tmp").iterdir())


def test_a_copy_that_fails_says_so_in_one_line(here, capfd, monkeypatch):
    fake_mpremote(here / "hall", monkeypatch, fail=True)
    port, code = deploy_on_a_pty(settings_file(here, GOOD))
    assert code == 2
    out, err = capfd.readouterr()
    assert out.splitlines()[1:] == ["cp main.py :main.py"]  # mpremote's progress, as it came
    [line] = err.splitlines()
    assert port in line and "Input/output error" in line and "Traceback" not in err
    assert not any((here / "tmp").iterdir())


ACCOUNT_KEYS = "site, device, broker, broker_user, broker_password, broker_ca"


@pytest.mark.parametrize("extra", [["--dry-run"], []])
def test_settings_not_yet_given_an_account_say_what_to_run(tmp_path, extra):
    """Issue #19: the hall's part of the file, deployed before `svc-broker add-device`."""
    result = deploy(tmp_path, HALL_ONLY, *extra, port="/dev/ttyNOPE")
    assert result.returncode == 2 and not result.stdout
    [line] = result.stderr.splitlines()
    path = tmp_path / "device.json"
    assert f"{path} has no {ACCOUNT_KEYS}:" in line
    assert f"svc-broker add-device DIR SITE DEVICE --out {path}" in line
    assert "None" not in line and "Traceback" not in result.stderr
    assert not (tmp_path / "img").exists()


def test_settings_with_part_of_an_account_name_what_is_missing(tmp_path):
    named = {**HALL_ONLY, "site": "sjz-yuhua", "device": "ev-a1b2c3d4e5f6"}
    result = deploy(tmp_path, {**named, "broker": "mqtts://broker.hall1:8883"}, "--dry-run")
    assert result.returncode == 2
    assert "has no broker_user, broker_password, broker_ca:" in result.stderr
    assert "add-device DIR sjz-yuhua ev-a1b2c3d4e5f6 --out" in result.stderr
    account = {"broker_user": "sjz-yuhua/ev-a1b2c3d4e5f6", "broker_password": "pw"}
    result = deploy(tmp_path, {**named, "broker": "mqtts://b:8883", **account}, "--dry-run")
    assert result.returncode == 2 and "has no broker_ca:" in result.stderr


def test_the_account_keys_are_named_once_by_the_firmware(tmp_path):
    """svc-broker writes the keys deploy asks for: both take them from the firmware."""
    folder = init(tmp_path / "b", "127.0.0.1:1", "b.example")
    written = credentials.device_settings(folder, "sjz-yuhua", "ev-a1b2c3", "pw")
    assert tuple(written) == fw_deploy.ACCOUNT_KEYS == credentials.ACCOUNT_KEYS
    assert ", ".join(fw_deploy.ACCOUNT_KEYS) == ACCOUNT_KEYS
    assert written == {
        "site": "sjz-yuhua",
        "device": "ev-a1b2c3",
        "broker": folder.url,
        "broker_user": "sjz-yuhua/ev-a1b2c3",
        "broker_password": "pw",
        "broker_ca": folder.ca_cert.read_text(),
    }


@pytest.mark.parametrize(
    "content, why",
    [
        (b'{"wifi_ssid": "hall",', "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b'["wifi_ssid"]', "must be a JSON object"),
        (None, "cannot read"),
    ],
)
def test_a_settings_file_that_cannot_be_read_says_so_in_one_line(tmp_path, content, why):
    path = tmp_path / "ev-hall1-03.json"
    if content is not None:
        path.write_bytes(content)
    result = subprocess.run(
        [str(SVC_FIRMWARE), "deploy", "--port", "/dev/ttyNOPE", "--settings", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and not result.stdout
    [line] = result.stderr.splitlines()
    assert str(path) in line and why in line and "Traceback" not in result.stderr
