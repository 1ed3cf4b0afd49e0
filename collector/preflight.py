"""What the collector must be able to read and write, tried before it starts: a file it
cannot open is named, with the fix, in one line, and the collector exits with status 2 (the
systemd unit then stops restarting it) instead of failing deep inside paho or the spool, or,
worse, running with an empty roster that would dead-letter every terminal of the hall."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from collector.settings import Settings


def problems(settings: Settings) -> list[str]:
    """One line for each file or folder the collector cannot use as it runs now."""
    found = []
    for path, what in (
        (settings.mqtt_ca_file, "mqtt_ca_file, the CA that checks the broker"),
        (settings.known_devices, "known_devices, the roster of terminals"),
    ):
        if path is not None and (why := _unreadable(path)):
            found.append(f"cannot read {path} ({what}) as user {_user()}: {why}; {_fix(path)}")
    if why := _unwritable(settings.state_dir):
        found.append(
            f"cannot write in {settings.state_dir} (state_dir: spool and dead letters) as user "
            f"{_user()}: {why}; give that user the folder (the systemd unit's StateDirectory "
            "does), or set state_dir to one it owns"
        )
    return found


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        return e.strerror or str(e)
    return None


def _unwritable(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".preflight-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


def _fix(path: Path) -> str:
    """What to do about an unreadable file: the first folder on its way that is closed to
    others, or the file itself."""
    for folder in reversed(path.parents):
        if folder.exists() and not os.access(folder, os.X_OK):
            return f"let the user through {folder} (chmod o+x {folder}, or add it to its group)"
    if path.exists():
        return f"let the user read it (chmod o+r {path}, or add it to the file's group)"
    return "check the path in the settings file"


def _user() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
