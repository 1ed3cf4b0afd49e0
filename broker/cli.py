"""svc-broker: set up a hall's Mosquitto and give each terminal and service its account.

    svc-broker init DIR [--listen HOST:PORT] [--hostname NAME]
    svc-broker add-device DIR SITE DEVICE --out FILE
    svc-broker add-service DIR NAME --role collector|tools|console --out FILE [--owner USER]
    svc-broker add-web DIR --host NAME [--host NAME ...] --out-dir DIR [--owner USER]
    svc-broker remove DIR NAME
    svc-broker retire DIR SITE DEVICE   (a terminal took its rotated password: the old revoked)
    svc-broker rewrite DIR      (after an upgrade: every file again, from svc-broker.json)
    svc-broker renew DIR        (a new server certificate from the hall's CA, same names)

No password is printed: each goes only into its --out file (0600).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker import acl, credentials, pki
from broker.folder import DEFAULT_PORT, BrokerSetupError, Folder, init, load
from firmware import contract


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svc-broker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="write a new broker folder")
    p_init.add_argument("dir", type=Path)
    p_init.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}", help="HOST:PORT (TLS)")
    p_init.add_argument("--hostname", help="the name clients connect to (default: this host's)")
    p_init.add_argument("--topic-root", default=contract.ROOT)
    p_init.add_argument("--user", default="mosquitto", help="whom Mosquitto runs as, as root")
    p_dev = sub.add_parser("add-device", help="a terminal's account and settings file")
    p_dev.add_argument("dir", type=Path)
    p_dev.add_argument("site")
    p_dev.add_argument("device")
    p_dev.add_argument("--out", type=Path, required=True, help="its settings.json (kept keys)")
    p_dev.add_argument(
        "--replace",
        action="store_true",
        help="a new password, on the terminal's other account: the one it uses stays valid",
    )
    p_svc = sub.add_parser("add-service", help="a collector's, a tool's or the console's account")
    p_svc.add_argument("dir", type=Path)
    p_svc.add_argument("name")
    p_svc.add_argument("--role", choices=acl.ROLES, required=True)
    p_svc.add_argument("--out", type=Path, required=True, help="its settings file (TOML)")
    p_svc.add_argument("--replace", action="store_true", help="a new password for an account")
    p_svc.add_argument("--owner", help="the system user the service runs as: --out is theirs")
    p_web = sub.add_parser("add-web", help="an HTTPS certificate for the console, from the CA")
    p_web.add_argument("dir", type=Path)
    p_web.add_argument(
        "--host", action="append", required=True, help="a name or address (again for more)"
    )
    p_web.add_argument("--out-dir", type=Path, required=True, help="where web.crt and web.key go")
    p_web.add_argument("--owner", help="the system user the web server runs as: web.key is theirs")
    p_rm = sub.add_parser("remove", help="an account gone (a device's name is site/device)")
    p_rm.add_argument("dir", type=Path)
    p_rm.add_argument("name")
    p_rt = sub.add_parser("retire", help="a terminal took its new password: revoke the old")
    p_rt.add_argument("dir", type=Path)
    p_rt.add_argument("site")
    p_rt.add_argument("device")
    p_rw = sub.add_parser("rewrite", help="write the configuration, ACL and roster again")
    p_rw.add_argument("dir", type=Path)
    p_rn = sub.add_parser("renew", help="a new server certificate, signed by the hall's CA")
    p_rn.add_argument("dir", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(_run(args))
    except BrokerSetupError as e:
        print(f"svc-broker: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file it cannot read or write, named
        print(f"svc-broker: {e.filename or args.dir}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> str:
    """Do what the command line asks; what to tell the person."""
    if args.command == "init":
        folder = init(args.dir, args.listen, args.hostname, args.topic_root, args.user)
        return f"broker set up in {folder.path}: {folder.url}; mosquitto -c {folder.conf}"
    folder = load(args.dir)
    if args.command == "renew":
        until = folder.renew_server()
        return f"{folder.path}/server.crt renewed, valid until {until:%Y-%m-%d}; restart Mosquitto"
    if args.command == "rewrite":
        folder.save()
        return f"{folder.path} written again; {folder.reload()} running broker(s) reloaded"
    if args.command == "add-web":
        cert, key = credentials.add_web(folder, args.host, args.out_dir, owner=args.owner)
        until = pki.expires(cert.read_bytes())
        return f"{cert} and {key} for {', '.join(args.host)}, valid until {until:%Y-%m-%d}"
    if args.command in ("remove", "retire"):
        return _remove(args, folder)
    adding = _add_device if args.command == "add-device" else _add_service
    return adding(args, folder)


def _remove(args: argparse.Namespace, folder: Folder) -> str:
    if args.command == "remove":
        folder.remove_account(args.name)
        return f"account {args.name} removed; {folder.reload()} running broker(s) reloaded"
    old = folder.retire(f"{args.site}/{args.device}")
    return f"account {old}'s password revoked; {folder.reload()} running broker(s) reloaded"


def _add_service(args: argparse.Namespace, folder: Folder) -> str:
    credentials.add_service(
        folder, args.name, args.role, args.out, replace=args.replace, owner=args.owner
    )
    told = folder.reload()
    return (
        f"account {args.name} ({folder.accounts[args.name]}): settings in {args.out}; "
        f"{told} running broker(s) reloaded"
    )


def _add_device(args: argparse.Namespace, folder: Folder) -> str:
    name = f"{args.site}/{args.device}"
    rotated = args.replace and name in folder.accounts
    credentials.add_device(folder, args.site, args.device, args.out, args.replace)
    told = folder.reload()
    if not rotated:
        return f"account {name} (device): settings in {args.out}; {told} running broker(s) reloaded"
    return (
        f"account {folder.using.get(name, name)} has the new password, in {args.out}; the "
        f"terminal logs in with its present one until it has taken these settings (offer them: "
        f"svc-firmware offer-settings {args.out} --settings TOOLS_SETTINGS; then svc-broker "
        f"retire {args.dir} {args.site} {args.device}); {told} running broker(s) reloaded"
    )


if __name__ == "__main__":
    sys.exit(main())
