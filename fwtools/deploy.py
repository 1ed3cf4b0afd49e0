"""Copy the image and a device's settings file to a board, with mpremote."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from fwtools.unix_port import firmware_module, tool_binary


class DeployError(RuntimeError):
    """The settings file is not one a terminal could start with, or the board is not there."""


# What `svc-broker add-device` writes (broker/credentials.py, device_settings), as the
# firmware's settings module names them.
ACCOUNT_KEYS: tuple[str, ...] = firmware_module("settings").ACCOUNT_KEYS


def check_settings(path: Path) -> dict[str, object]:
    """Load a settings file and check it as the firmware will at boot."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DeployError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:  # not UTF-8
        raise DeployError(f"{path} is not a settings file (not JSON): {e}") from None
    try:
        values = json.loads(text)
    except ValueError as e:
        raise DeployError(f"{path} is not a settings file (not JSON): {e}") from None
    if not isinstance(values, dict):
        raise DeployError(f"{path}: settings must be a JSON object")
    missing = missing_account_keys(values)
    if missing:
        contract = firmware_module("contract")
        site, device = (
            values[key] if contract.valid_name(key, values.get(key)) else key.upper()
            for key in ("site", "device")
        )
        raise DeployError(
            f"{path} has no {', '.join(missing)}: run `svc-broker add-device DIR {site} {device} "
            f"--out {shlex.quote(str(path))}` on the broker's machine first"
        )
    firmware_settings = firmware_module("settings")  # the firmware's own check
    try:
        firmware_settings.load(str(path), default_device="ev-000000000000")
    except (firmware_settings.SettingsError, ValueError, TypeError) as e:
        # its reason names the setting; a ValueError or TypeError it did not foresee is
        # refused all the same, in one line
        raise DeployError(f"{path}: {' '.join(str(e).split()) or type(e).__name__}") from None
    if not values.get("wifi_ssid"):
        raise DeployError(f"{path}: wifi_ssid is required on a board")
    return values


def missing_account_keys(values: dict[str, object]) -> list[str]:
    """The keys `svc-broker add-device` writes that `values` lacks. A development broker's
    `mqtt://` URL may carry the account itself and needs no CA, as the firmware allows; a
    broker that is no mqtts:// or mqtt:// URL is left to the firmware's check to name."""
    missing = [key for key in ACCOUNT_KEYS if values.get(key) in (None, "")]
    url = values.get("broker")
    if url in (None, "") or (isinstance(url, str) and url.startswith("mqtts://")):
        return missing
    needs = set(ACCOUNT_KEYS[:3])
    if isinstance(url, str) and url.startswith("mqtt://") and "@" not in url[7:]:
        needs |= {"broker_user", "broker_password"}
    return [key for key in missing if key in needs]


# Modules left on the file system by an earlier deploy would be found before /rom's, the boot
# loader's slot.json would run an image an update over the air wrote, not this one, and
# settings offered over the air and not yet taken would be tried over the deployed ones.
REMOVE_EARLIER = (
    "import os;[os.remove(f) for f in os.listdir() if f.endswith('.mpy') or f in "
    "('slot.json','settings.next.json')]"
)


def commands(
    port: str, image: list[Path], settings: Path, romfs: Path | None = None
) -> list[list[str]]:
    """One mpremote run: copy every image file and the settings, then reset the board. With
    a ROMFS image, the modules go to the board's ROM partition instead (its firmware must
    have one, MicroPython 1.25+), and only the boot loader (main.py, slots.py) to its file
    system. What an earlier deploy or update left that would run instead goes first."""
    cmd = [mpremote(), "connect", port]
    if romfs is not None:
        cmd += ["romfs", "deploy", str(romfs), "+"]
        image = [path for path in image if path.suffix != ".mpy"]
    cmd += ["exec", REMOVE_EARLIER, "+"]
    for path in image:
        cmd += ["fs", "cp", str(path), f":{path.name}", "+"]
    cmd += ["fs", "cp", str(settings), ":settings.json", "+", "reset"]
    return [cmd]


def mpremote() -> str:
    return tool_binary("mpremote", "pip install mpremote")


CHECKS = (
    "check the USB cable, the port's name (ls /dev/ttyUSB* /dev/ttyACM*), that you are in "
    "the dialout group (sudo usermod -aG dialout $USER, then log in again), and that no other "
    "program (a serial monitor, another mpremote) holds the port"
)

# mpremote waits up to 10 s for each of the board's three answers to entering its raw REPL;
# on a pseudo-terminal (/dev/pts/N) it waits for the first one without end.
PROBE_TIMEOUT_S = 40.0


def no_board(port: str, why: str) -> DeployError:
    return DeployError(f"no board on {port} ({why}): {CHECKS}")


def check_port(port: str) -> None:
    """That a MicroPython board answers on `port`, before anything is built or copied: a
    serial device this user may open, and a REPL that answers mpremote within
    PROBE_TIMEOUT_S (mpremote would wait for ever on some ports that are no board's)."""
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        raise no_board(port, "no such port") from None
    except OSError as e:
        raise no_board(port, e.strerror or str(e)) from None
    if not stat.S_ISCHR(mode):
        raise no_board(port, "not a serial device")
    if not os.access(port, os.R_OK | os.W_OK):
        raise no_board(port, "permission denied")
    cmd = [mpremote(), "connect", port, "eval", "1"]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise no_board(port, f"no MicroPython REPL answered in {PROBE_TIMEOUT_S:g} s") from None
    if done.returncode == 0:
        return
    said = done.stdout + done.stderr
    if "failed to access" in said:
        raise no_board(port, "it cannot be opened as a serial port")
    if "could not enter raw repl" in said:
        raise no_board(port, "no MicroPython REPL answered; is MicroPython flashed on it?")
    raise no_board(port, f"mpremote: {last_line(said)}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run(cmds: list[list[str]], dry_run: bool, port: str) -> None:
    """Print each command, and unless dry_run run it: mpremote's progress goes to stdout as
    it comes, its errors become one line (a DeployError)."""
    for cmd in cmds:
        print(shlex.join(cmd), flush=True)
        if dry_run:
            continue
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise DeployError(
                f"the deploy to {port} stopped ({last_line(done.stderr)}): deploy again once "
                "that is fixed (a board unplugged or reset on the way, --romfs to a MicroPython "
                "with no ROM partition...)"
            )
        sys.stderr.write(done.stderr)
