"""svc-firmware: build the terminal's image, or deploy it with a settings file to a board."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fwtools import deploy, image


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
    put.add_argument("--out", type=Path, default=Path("build/image"))
    put.add_argument(
        "--romfs",
        action="store_true",
        help="modules to the board's ROM partition (firmware with one, MicroPython 1.25+): "
        "they run in place from flash, and the heap keeps what their copies would take",
    )
    put.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)

    try:
        if args.command == "deploy":
            deploy.check_settings(args.settings)
        files = image.build(args.out)
        romfs = image.write_romfs(files, args.out.with_name(args.out.name + ".romfs"))
        if args.command == "build":
            for path in [*files, romfs]:
                print(path)
            return 0
        cmds = deploy.commands(args.port, files, args.settings, romfs if args.romfs else None)
        deploy.run(cmds, args.dry_run)
    except (image.BuildError, deploy.DeployError) as e:
        print(f"svc-firmware: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
