"""svc-firmware: build the terminal's image, deploy it with a settings file to a board, or
publish it to a hall's terminals over the air."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from collector.settings import SettingsError
from firmware import contract
from fwtools import deploy, image
from fwtools.publish import ROMFS_HEADER, Rollout, Tools, settings_offered, table
from fwtools.unix_port import FirmwareError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-firmware", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="compile the image with mpy-cross, and its ROMFS image beside it"
    )
    build.add_argument("--out", type=Path, default=Path("build/image"))
    put = commands.add_parser("deploy", help="build, then copy image and settings to a board")
    put.add_argument("--port", required=True, help="serial port, for example /dev/ttyUSB0")
    put.add_argument("--settings", type=Path, required=True, help="the device's settings.json")
    put.add_argument(
        "--out",
        type=Path,
        help="keep the image here (default: built in a temporary folder, removed when done)",
    )
    put.add_argument(
        "--romfs",
        action="store_true",
        help="modules to the board's ROM partition (firmware with one, MicroPython 1.25+): "
        "they run in place from flash, and the heap keeps what their copies would take",
    )
    put.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    pub = commands.add_parser("publish", help="offer an image to terminals over the air")
    pub.add_argument("image", type=Path, help="the ROMFS image svc-firmware build wrote")
    pub.add_argument("--site", required=True)
    whom = pub.add_mutually_exclusive_group(required=True)
    whom.add_argument("--device", action="append", help="a terminal (again for more)")
    whom.add_argument("--all", action="store_true", help="every terminal of the site")
    pub.add_argument(
        "--settings", type=Path, required=True, help="a tools account's settings (TOML)"
    )
    pub.add_argument("--wave", type=int, help="offer to this many first, the rest once confirmed")
    pub.add_argument("--timeout", type=float, default=3600, help="seconds to serve and wait")
    new = commands.add_parser(
        "offer-settings", help="a terminal's new broker settings (a password rotated), over the air"
    )
    new.add_argument("file", type=Path, help="its settings file, as svc-broker add-device wrote it")
    new.add_argument(
        "--settings", type=Path, required=True, help="a tools account's settings (TOML)"
    )
    new.add_argument("--timeout", type=float, default=3600, help="seconds to serve and wait")
    args = parser.parse_args(argv)
    if args.command in ("publish", "offer-settings"):
        return publish(args)

    try:
        if args.command == "build":
            files = image.build(args.out)
            romfs = image.write_romfs(files, romfs_path(args.out))
            for path in [*files, romfs]:
                print(path)
            return 0
        deploy.check_settings(args.settings)
        if not args.dry_run:
            deploy.check_port(args.port)
        if args.out is not None:
            put_image(args, args.out)
        else:  # nothing left behind, on a dry run either
            with tempfile.TemporaryDirectory(prefix="svc-firmware-") as folder:
                put_image(args, Path(folder) / "image")
    except (image.BuildError, deploy.DeployError, FirmwareError) as e:
        print(f"svc-firmware: {e}", file=sys.stderr)
        return 2
    return 0


def romfs_path(out: Path) -> Path:
    return out.with_name(out.name + ".romfs")


def put_image(args: argparse.Namespace, out: Path) -> None:
    """Build the image into `out` (its ROMFS image beside it with --romfs), then run (or with
    --dry-run only print) the mpremote command that puts it and the settings on the board."""
    files = image.build(out)
    romfs = image.write_romfs(files, romfs_path(out)) if args.romfs else None
    deploy.run(deploy.commands(args.port, files, args.settings, romfs), args.dry_run, args.port)


def publish(args: argparse.Namespace) -> int:
    """Offer, serve and wait (fwtools/publish.py); 0 when every terminal offered confirmed."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rollout = _rollout(args)
        terminals = rollout.run(args.timeout)
    except (SettingsError, OSError) as e:
        print(f"svc-firmware: {e}", file=sys.stderr)
        return 2
    print(
        f"{rollout.kind} {rollout.sha256} ({len(rollout.image)} bytes), "
        f"{rollout.chunks_sent} chunks served"
    )
    print(table(terminals))
    if rollout.stopped:
        print(f"stopped: {rollout.stopped}")
    if not terminals:
        print("no terminal of the site has reported a state")
    return 0 if terminals and all(t.result == "ok" for t in terminals.values()) else 1


def _rollout(args: argparse.Namespace) -> Rollout:
    """The rollout the command line asks for, every argument checked."""
    tools = Tools.load(args.settings)
    if args.command == "offer-settings":
        site, device, blob = settings_offered(args.file)
        return Rollout(tools, site, blob, [device], kind="settings")
    if not contract.valid_name("site", args.site):
        raise SettingsError(f"--site {args.site!r} breaks {contract.name_pattern('site')}")
    for device in args.device or []:
        if not contract.valid_name("device", device):
            raise SettingsError(f"--device {device!r} breaks {contract.name_pattern('device')}")
    if args.wave is not None and args.wave < 1:
        raise SettingsError("--wave must be 1 or more")
    image = args.image.read_bytes()
    if not image.startswith(ROMFS_HEADER):
        raise SettingsError(f"{args.image} is not a ROMFS image (svc-firmware build writes it)")
    return Rollout(tools, args.site, image, args.device or [], args.wave)


if __name__ == "__main__":
    sys.exit(main())
