"""What the collector must be able to read and write, tried before it starts: a file it
cannot use is named, with the fix, in one line, instead of failing deep inside paho or the
spool, or, worse, running with an empty roster that would dead-letter every terminal of the
hall. A problem of the set-up (a path wrong, a permission missing) exits with status 2, which
the systemd unit does not restart; any other (a full or failing disk, a mount not there yet)
with 1, which it does."""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from collector.settings import Settings

# what only a person can mend: restarting cannot help
SETUP_ERRORS = frozenset(
    {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL}
)


@dataclass(frozen=True)
class Problem:
    text: str
    setup: bool  # a path or a permission: exit 2, not restarted


def problems(settings: Settings) -> list[Problem]:
    """One for each file or folder the collector cannot use as it runs now."""
    found = []
    for path, what in (
        (settings.mqtt_ca_file, "mqtt_ca_file, the CA that checks the broker"),
        (settings.known_devices, "known_devices, the roster of terminals"),
    ):
        if path is not None and (e := _unreadable(path)):
            text = f"cannot read {path} ({what}) as user {_user()}: {_why(e)}; {_fix(path, e)}"
            found.append(Problem(text, e.errno in SETUP_ERRORS))
    folder = settings.state_dir
    if e := _unwritable(folder):
        fix = (
            "give that user the folder (the systemd unit's StateDirectory does), or set "
            "state_dir to one it owns"
            if e.errno in (errno.EACCES, errno.EPERM)
            else "set state_dir to a folder"
            if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT)
            else "see to the disk (df -h, and the system log)"
        )
        text = f"cannot write in {folder} (state_dir: spool and dead letters) as user {_user()}"
        found.append(Problem(f"{text}: {_why(e)}; {fix}", e.errno in SETUP_ERRORS | {errno.EEXIST}))
    return found


def startup_problem(e: OSError, what: str) -> Problem:
    """A file that failed the collector as it started, after the checks above passed."""
    return Problem(f"cannot start: {what}: {_why(e)}", e.errno in SETUP_ERRORS)


def _unreadable(path: Path) -> OSError | None:
    """Why the file cannot be read, if it cannot; never waits on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        return e
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return OSError(errno.EISDIR, "a folder, not a file")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return OSError(errno.EINVAL, "not a regular file")  # a FIFO would hang the start
        os.read(fd, 1)
    except OSError as e:
        return e
    finally:
        os.close(fd)
    return None


def _unwritable(folder: Path) -> OSError | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".preflight-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except FileExistsError:
        return OSError(errno.EEXIST, "there is a file of that name, not a folder")
    except OSError as e:
        return e
    return None


def _fix(path: Path, e: OSError) -> str:
    """What to do about an unreadable file: the first part of its path that is closed to
    this user or is no folder, or the file itself."""
    for folder in reversed(path.parents):
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, not a folder: check the path in the settings file"
        if folder.exists() and not os.access(folder, os.X_OK):
            return f"let the user through {folder} (chmod o+x {folder}, or add it to its group)"
    if e.errno == errno.EACCES and path.is_file():
        return f"let the user read it (chmod o+r {path}, or add it to the file's group)"
    return "check the path in the settings file"


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _user() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
