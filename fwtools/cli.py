"""svc-firmware: build the terminal's image, or deploy it with a settings file to a board."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fwtools import deploy, image
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
