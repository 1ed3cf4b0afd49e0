"""systemctl and journalctl for a machine without systemd, for the install guide's test only.

The test machine's PID 1 is not systemd, so `systemctl` cannot run there. This reads the same
unit files systemd would (/etc/systemd/system over /lib/systemd/system, with drop-ins) and does
what the guide asks of them: ExecStartPre and ExecStart with their `$VAR` expansion,
Environment and EnvironmentFile, User and Group, StateDirectory, Type=notify (through a real
NOTIFY_SOCKET: Debian's Mosquitto says READY=1), simple and oneshot; timers are checked with
`systemd-analyze calendar`. A unit's stdout and stderr go to a file that `journalctl -u` prints.
What the guide does not use (dependencies, restart policies, cgroups) is not here.

    python -m tests.guide.systemd systemctl ARGS...
    python -m tests.guide.systemd journalctl ARGS...
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/lib/systemd/system"))
RUN = Path("/run/guide-systemd")  # pid files, notify sockets
JOURNAL = Path("/var/log/guide-journal")  # one file a unit
READY_S = 20.0
STOP_S = 15.0
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    name: str
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        found = self.values.get(key)
        return found[-1] if found else default

    def all(self, key: str) -> list[str]:
        return self.values.get(key, [])


def load(name: str) -> Unit:
    if "." not in name:
        name += ".service"
    unit = Unit(name)
    main = next((d / name for d in UNIT_DIRS if (d / name).exists()), None)
    if main is None:
        raise SystemExit(f"Unit {name} not found.")
    files = [main, *sorted((UNIT_DIRS[0] / f"{name}.d").glob("*.conf"))]
    for path in files:
        for raw in _logical_lines(path.read_text()):
            key, sep, value = raw.partition("=")
            if not sep or raw.startswith("["):
                continue
            key, value = key.strip(), value.strip()
            if value == "":  # an empty assignment resets the list (ExecStart= in a drop-in)
                unit.values[key] = []
            else:
                unit.values.setdefault(key, []).append(value)
    return unit


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped[0] in "#;"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


def environment(unit: Unit) -> dict[str, str]:
    env = {"PATH": PATH, "LANG": "C.UTF-8"}
    for spec in unit.all("Environment"):  # the files' settings override these, as systemd's
        for word in shlex.split(spec):
            key, _, value = word.partition("=")
            env[key] = value
    for spec in unit.all("EnvironmentFile"):
        optional = spec.startswith("-")
        path = Path(spec.lstrip("-"))
        if not path.exists():
            if optional:
                continue
            raise SystemExit(f"{unit.name}: EnvironmentFile {path} is missing")
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip().strip('"')
    user = unit.get("User")
    if user:
        entry = pwd.getpwnam(user)
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    return env


def command(line: str, env: dict[str, str]) -> tuple[list[str], bool]:
    """A command line as systemd splits it: `$VAR` alone becomes its words, `${VAR}` its value
    in place; a leading `-` lets it fail."""
    may_fail = line.startswith("-")
    words: list[str] = []
    for word in shlex.split(line.lstrip("-@+!")):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words += env.get(word[1:], "").split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), word))
    return words, may_fail


def _ids(unit: Unit) -> tuple[int | None, int | None]:
    user, group = unit.get("User"), unit.get("Group")
    uid = pwd.getpwnam(user).pw_uid if user else None
    gid = grp.getgrnam(group).gr_gid if group else (pwd.getpwnam(user).pw_gid if user else None)
    return uid, gid


def _pidfile(unit: Unit) -> Path:
    return RUN / f"{unit.name}.pid"


def running_pid(unit: Unit) -> int | None:
    try:
        pid = int(_pidfile(unit).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # a zombie of a finished start is not running
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return None
    return pid


def start(unit: Unit) -> int:
    if unit.name.endswith(".timer"):
        return _arm(unit)
    if running_pid(unit):
        return 0
    env = environment(unit)
    uid, gid = _ids(unit)
    for name in unit.get("StateDirectory").split():
        folder = Path("/var/lib") / name
        folder.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            os.chown(folder, uid, gid if gid is not None else -1)
    JOURNAL.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    log = (JOURNAL / f"{unit.name}.log").open("ab")
    for pre in unit.all("ExecStartPre"):
        argv, may_fail = command(pre, env)
        done = subprocess.run(argv, env=env, stdout=log, stderr=log, check=False)
        if done.returncode and not may_fail:
            print(f"{unit.name}: ExecStartPre {argv} failed", file=sys.stderr)
            return 1
    starts = unit.all("ExecStart")
    if len(starts) != 1:
        raise SystemExit(f"{unit.name}: {len(starts)} ExecStart lines")
    argv, _ = command(starts[0], env)
    kind = unit.get("Type", "simple")
    notify = None
    if kind == "notify":
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = RUN / f"{unit.name}.notify"
        address.unlink(missing_ok=True)
        notify.bind(str(address))
        os.chmod(address, 0o777)
        env["NOTIFY_SOCKET"] = str(address)
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        user=uid,
        group=gid,
        extra_groups=[] if uid is not None else None,
        start_new_session=True,
    )
    if kind == "oneshot":
        code = proc.wait()
        if code:
            print(f"Job for {unit.name} failed: exit status {code}", file=sys.stderr)
        return 1 if code else 0
    _pidfile(unit).write_text(str(proc.pid))
    if notify is not None:
        return _wait_ready(unit, proc, notify)
    time.sleep(0.2)
    if proc.poll() is not None:
        print(f"{unit.name}: exited at once with status {proc.returncode}", file=sys.stderr)
        return 1
    return 0


def _wait_ready(unit: Unit, proc: subprocess.Popen[bytes], notify: socket.socket) -> int:
    notify.settimeout(0.2)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"{unit.name}: exited with status {proc.returncode}", file=sys.stderr)
            return 1
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.split("\n"):
            return 0
    print(f"{unit.name}: no READY=1 in {READY_S} s", file=sys.stderr)
    return 1


def _arm(timer: Unit) -> int:
    """A timer is checked as systemd reads it; it fires in its own time, not in a test."""
    for spec in timer.all("OnCalendar"):
        check = ["systemd-analyze", "calendar", spec]
        done = subprocess.run(check, capture_output=True, check=False)
        if done.returncode:
            print(f"{timer.name}: OnCalendar {spec!r}: {done.stderr.decode()}", file=sys.stderr)
            return 1
    service = timer.get("Unit", timer.name.removesuffix(".timer") + ".service")
    load(service)  # it must exist
    RUN.mkdir(parents=True, exist_ok=True)
    (RUN / f"{timer.name}.armed").write_text(service)
    return 0


def stop(unit: Unit) -> int:
    pid = running_pid(unit)
    if pid is None:
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + float(unit.get("TimeoutStopSec", str(STOP_S)))
    while time.monotonic() < deadline and running_pid(unit):
        time.sleep(0.1)
    if running_pid(unit):
        os.kill(pid, signal.SIGKILL)
    _pidfile(unit).unlink(missing_ok=True)
    return 0


def systemctl(args: list[str]) -> int:
    now = "--now" in args
    words = [a for a in args if not a.startswith("-")]
    if not words:
        raise SystemExit("systemctl: no verb")
    verb, names = words[0], words[1:]
    if verb == "daemon-reload":
        return 0
    code = 0
    for name in names:
        unit = load(name)
        if verb == "start" or (verb == "enable" and now):
            code |= start(unit)
        elif verb == "enable":
            continue
        elif verb == "stop":
            code |= stop(unit)
        elif verb == "restart":
            stop(unit)
            code |= start(unit)
        elif verb == "reload":
            pid = running_pid(unit)
            if pid is None:
                return 1
            os.kill(pid, signal.SIGHUP)
        elif verb in ("is-active", "status"):
            active = running_pid(unit) is not None
            print("active" if active else "inactive")
            code |= 0 if active else 3
        else:
            raise SystemExit(f"systemctl: {verb} is not done here")
    return code


def journalctl(args: list[str]) -> int:
    units: list[str] = []
    count: int | None = None
    rest = iter(args)
    for arg in rest:
        if arg == "-u":
            units.append(next(rest))
        elif arg == "-n":
            count = int(next(rest))
        elif arg == "--no-pager":
            continue
        else:
            raise SystemExit(f"journalctl: {arg} is not done here")
    lines: list[str] = []
    for name in units:
        path = JOURNAL / f"{load(name).name}.log"
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    for line in lines[-count:] if count else lines:
        print(line)
    return 0


if __name__ == "__main__":
    tool, *arguments = sys.argv[1:]
    sys.exit(systemctl(arguments) if tool == "systemctl" else journalctl(arguments))
