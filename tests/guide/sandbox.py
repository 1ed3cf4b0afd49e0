"""Runs the install guide's commands, as written, as root, on a machine of the test's making.

Started by tests/test_install_guide.py under `unshare --pid --mount --net --fork`: this process
is the namespace's first, so every server the guide starts ends with it. Inside:
- /etc, /var, /root, /opt and /usr are overlays whose changes land in the test's folder, so
  `useradd`, `/etc/mosquitto/svc` and `/var/lib/svc-collector` are real paths the host never
  sees;
- /dev is the namespace's own, with no serial port: a board on the host's USB is never reached;
- the network is a loopback of its own, so the guide's fixed ports (8883, 8086, 8088, 9108,
  8443) are free, and `broker.hall1.example` and `console.hall1.example` are 127.0.0.1, as the
  hall's DNS would make them;
- /opt/svc-rating is the checkout under test, read-only;
- systemctl and journalctl are tests/guide/systemd.py (the machine's PID 1 is not systemd).
Where the guide has a person plug in a board, a real firmware instance under the MicroPython
Unix port takes the board's place, with the settings file the guide made; where it has them
type a password, the plan's `input` is what they type.

    python -m tests.guide.sandbox PLAN.json TRANSCRIPT.json WORKDIR
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from simulator.terminal_process import FirmwareTerminal

CHECKOUT = Path(__file__).resolve().parents[2]
OVERLAID = ("/etc", "/var", "/root", "/opt", "/usr")  # /bin, /lib, /sbin are /usr's on Debian 12
# the device nodes a shell and the services need; no serial port, no disk: a board the host has
# on USB is never reached by the guide's deploy
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}
HOSTNAMES = ("broker.hall1.example", "console.hall1.example")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP_TIMEOUT_S = 120


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def make_machine(work: Path) -> None:
    sh("mount", "--make-rprivate", "/")
    sh("ip", "link", "set", "lo", "up")
    sh("mount", "-t", "proc", "proc", "/proc")  # this namespace's processes only
    for target in OVERLAID:
        layer = work / "layers" / target.strip("/").replace("/", "_")
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        options = f"lowerdir={target},upperdir={layer / 'upper'},workdir={layer / 'work'}"
        sh("mount", "-t", "overlay", "overlay", "-o", options, target)
    sh("mount", "-t", "tmpfs", "tmpfs", "/run")
    make_devices()
    hosts = Path("/etc/hosts")
    text = hosts.read_text() if hosts.exists() else ""
    hosts.unlink(missing_ok=True)  # a link would lead out of the overlay
    names = " ".join(HOSTNAMES)
    hosts.write_text(f"{text}\n127.0.0.1 {names}\n")  # as the hall's DNS would answer
    Path("/opt/svc-rating").mkdir(exist_ok=True)
    sh("mount", "--bind", str(CHECKOUT), "/opt/svc-rating")
    sh("mount", "-o", "remount,bind,ro", "/opt/svc-rating")  # the checkout is only read
    for tool in ("systemctl", "journalctl"):
        wrapper = work / tool
        run = f"exec {sys.executable} -m tests.guide.systemd {tool}"
        wrapper.write_text(f'#!/bin/sh\ncd {CHECKOUT} && {run} "$@"\n')
        wrapper.chmod(0o755)
        Path(f"/usr/bin/{tool}").touch()  # in the /usr overlay, where there is none
        sh("mount", "--bind", str(wrapper), f"/usr/bin/{tool}")


def make_devices() -> None:
    """A /dev of the namespace's own."""
    sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/dev")
    for name, (major, minor) in DEVICES.items():
        os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{name}")
    for folder in ("pts", "shm"):
        Path(f"/dev/{folder}").mkdir()
    sh("mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts", "/dev/pts")
    os.symlink("pts/ptmx", "/dev/ptmx")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm")


class Board:
    """What a person does with the hardware, where the guide has them do it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.terminal: FirmwareTerminal | None = None

    def plugged_in(self) -> str:
        """The deployed terminal: the guide's settings file on a real firmware instance."""
        settings = json.loads(Path("/root/terminals/ev-hall1-03.json").read_text())
        self.terminal = FirmwareTerminal(self.work / "terminal", settings)
        self.terminal.start()
        self.terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=60)
        return "connected"

    def took_config(self) -> str:
        assert self.terminal is not None
        took = self.terminal.wait_for(
            lambda e: e["ev"] == "config" and "staff" in e["changed"], timeout_s=30
        )
        time.sleep(1.0)  # the person types the next command; the new state is on its way
        return json.dumps(took)

    def customer_rates(self) -> str:
        """The prompt opened the window; the customer presses the top score."""
        assert self.terminal is not None
        opened = self.terminal.wait_for(lambda e: e["ev"] == "opened", timeout_s=30)
        time.sleep(1.0)  # a customer reads the prompt: a press within 500 ms would be suspect
        self.terminal.press(0)  # the leftmost key: 5, with the default buttons
        rated = self.terminal.wait_for(lambda e: e["ev"] == "rated", timeout_s=30)
        self.terminal.wait_acked(rated["seq"], timeout_s=60)
        return json.dumps({"opened": opened, "rated": rated})

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.stop()


def run(plan: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    board = Board(work)
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root"}
    transcript: list[dict[str, Any]] = []
    where = work / "cwd"
    where.write_text("/root")
    try:
        for step in plan:
            entry: dict[str, Any] = {"command": step["command"], "ran": step["run"]}
            transcript.append(entry)
            if step["run"]:
                # the folder carries over from one command to the next, as in a person's shell
                script = f"{step['command']}\nstatus=$?\npwd > {where}\nexit $status\n"
                typed = step.get("input")  # what the person types at the command's prompt
                done = subprocess.run(
                    ["bash", "-c", script],
                    cwd=where.read_text().strip(),
                    env=env,
                    input=None if typed is None else typed.encode(),
                    capture_output=True,
                    timeout=STEP_TIMEOUT_S,
                    check=False,
                )
                entry.update(
                    rc=done.returncode,
                    stdout=done.stdout.decode(errors="replace"),
                    stderr=done.stderr.decode(errors="replace"),
                )
                if done.returncode and not step.get("fails"):
                    break
            if step.get("then"):
                entry["then"] = getattr(board, step["then"])()
    except Exception as e:  # reported to the test with the transcript so far
        transcript.append({"error": repr(e)})
    finally:
        ps = subprocess.run(["ps", "-ww", "-eo", "user:20,args"], capture_output=True, check=False)
        transcript.append({"processes": ps.stdout.decode()})
        board.close()
        for name in ("svc-collector", "svc-console", "mosquitto", "influxdb"):
            journal = Path("/var/log/guide-journal") / f"{name}.service.log"
            if journal.exists():
                transcript.append({"journal": name, "text": journal.read_text()[-4000:]})
    return transcript


def main() -> int:
    plan_file, transcript_file, work = sys.argv[1:]
    make_machine(Path(work))
    plan = json.loads(Path(plan_file).read_text())
    Path(transcript_file).write_text(json.dumps(run(plan, Path(work)), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
