"""svc-dashboards (check the dashboards' queries, write the provisioning files), svc-appraisal."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException

from collector.influx import InfluxError, InfluxHttp
from dashboards import alerting, appraisal, check, evaluate, export, files, provision
from dashboards.macros import TimeRange


def _influx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--influx", default="http://127.0.0.1:8086", help="InfluxDB HTTP API")
    parser.add_argument("--db", default="service_quality", help="database (or bucket)")
    parser.add_argument("--token", default=None, help="API token (2.x/3.x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svc-dashboards", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "check", help="run every panel's and variable's query, macros expanded, against InfluxDB"
    )
    _influx_arguments(run)
    run.add_argument("--hours", type=float, default=24.0, help="the time range: the last N hours")
    alerts = commands.add_parser("alerts", help="evaluate the alert rules against InfluxDB now")
    _influx_arguments(alerts)
    push = commands.add_parser(
        "provision", help="push the data source, dashboards and alerting to Grafana's HTTP API"
    )
    push.add_argument("--grafana", required=True, help="Grafana's URL, like http://grafana:3000")
    push.add_argument("--token", required=True, help="a service account token (Editor or Admin)")
    push.add_argument(
        "--influx", default="http://127.0.0.1:8086", help="InfluxDB as Grafana reaches it"
    )
    push.add_argument("--db", default="service_quality", help="database (or bucket)")
    push.add_argument("--influx-token", default=None, help="InfluxDB API token (2.x/3.x)")
    generate = commands.add_parser("generate", help="write the provisioning files from the code")
    generate.add_argument("--out", type=Path, default=files.PROVISIONING, help="folder")
    args = parser.parse_args(argv)
    if args.command == "generate":
        for path in files.write(args.out):
            print(path)
        return 0
    if args.command == "provision":
        return _provision(args)
    now_ms = int(time.time() * 1000)
    influx = InfluxHttp(args.influx, args.db, args.token)
    if args.command == "alerts":
        return _alerts(influx, now_ms)
    when = TimeRange(now_ms - int(args.hours * 3_600_000), now_ms)
    outcomes = check.run(influx, when)
    print(check.report(outcomes))
    return 1 if any(o.error for o in outcomes) else 0


def _provision(args: argparse.Namespace) -> int:
    grafana = GrafanaApi.from_url(args.grafana, credential=args.token)
    try:
        done = provision.push(
            grafana, provision.InfluxSource(args.influx, args.db, args.influx_token)
        )
    except GrafanaException as e:
        print(f"svc-dashboards: Grafana: {e}", file=sys.stderr)
        return 1
    for what in done.created:
        print(f"created {what}")
    for what in done.updated:
        print(f"updated {what}")
    if not any(w.startswith("contact-point") for w in done.created + done.updated):
        print("no SVC_*_WEBHOOK_URL or SVC_ALERT_EMAILS set: contact points and policy untouched")
    return 0


def _alerts(influx: InfluxHttp, now_ms: int) -> int:
    """Print each rule and the label sets it fires for now."""
    try:
        for rule in alerting.RULES:
            fired = evaluate.firing(rule, influx, now_ms)
            print(f"{rule.uid:<22} {'FIRING' if fired else 'ok':<7} {len(fired)}")
            for labels in fired:
                print("    " + " ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    except InfluxError as e:
        print(f"svc-dashboards: InfluxDB: {e}", file=sys.stderr)
        return 1
    return 0


def appraisal_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="svc-appraisal",
        description="The month's appraisal per (hall, clerk), per clerk over every hall and"
        " per hall: stored in InfluxDB for the 员工考核 dashboard (a re-run overwrites) and"
        " exported.",
    )
    parser.add_argument(
        "month",
        help="the calendar month, like 2026-11 (2026-1 is taken as 2026-01), or `previous`"
        " (last month, for a timer)",
    )
    _influx_arguments(parser)
    parser.add_argument("--tz", default="Asia/Shanghai", help="the halls' time zone")
    parser.add_argument(
        "--min-ratings",
        type=int,
        default=30,
        help="rated ratings a clerk needs to be ranked, in a hall and over every hall",
    )
    parser.add_argument(
        "--out", type=Path, help="export to this .csv or .xlsx file ({month} is the month)"
    )
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix not in (".csv", ".xlsx"):
        parser.error("--out must end in .csv or .xlsx")
    influx = InfluxHttp(args.influx, args.db, args.token)
    try:
        month = (
            appraisal.previous_month(args.tz)
            if args.month == "previous"
            else appraisal.normal_month(args.month)
        )
        appraisal.month_bounds(month, args.tz)
        rows = appraisal.compute(influx, month, args.tz, args.min_ratings)
        written = appraisal.store(influx, month, args.tz, rows)
    except (ValueError, KeyError) as e:
        print(f"svc-appraisal: {e}", file=sys.stderr)
        return 2
    except InfluxError as e:
        print(f"svc-appraisal: InfluxDB: {e}", file=sys.stderr)
        return 1
    scopes = Counter(r.scope for r in rows)
    ranked = Counter(r.scope for r in rows if r.rank is not None)
    print(
        f"{month} ({args.tz}): {scopes['hall']} halls; {scopes['clerk']} clerks by hall, "
        f"{ranked['clerk']} ranked; {scopes['clerk_all']} clerks over every hall, "
        f"{ranked['clerk_all']} ranked; {written} points stored"
    )
    if args.out is not None:
        out = Path(str(args.out).replace("{month}", month))
        export.write(rows, out)
        print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
