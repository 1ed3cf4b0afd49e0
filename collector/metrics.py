"""What the collector counts, for Prometheus (`/metrics`), and its health (`/healthz`)."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = structlog.get_logger("collector")

KINDS = frozenset({"rating", "telemetry", "state", "config"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "svc_messages_received", "Messages taken off MQTT, by topic kind", ["kind"], registry=r
        )
        self.redelivered = Counter(
            "svc_messages_redelivered", "Messages the broker sent again (DUP flag set)", registry=r
        )
        self.stored = Counter(
            "svc_points_stored",
            "Points InfluxDB accepted, by measurement",
            ["measurement"],
            registry=r,
        )
        self.rejected = Counter(
            "svc_messages_rejected", "Messages dead-lettered, by reason", ["reason"], registry=r
        )
        self.copies = Counter(
            "svc_rating_copies",
            "Ratings that came again with the content already stored: acknowledged, not rewritten",
            registry=r,
        )
        self.suspect = Counter(
            "svc_ratings_suspect", "Ratings flagged suspect, by rule", ["rule"], registry=r
        )
        self.alerts = Counter(
            "svc_alerts_published", "Alerts published, by kind", ["kind"], registry=r
        )
        self.acks = Counter(
            "svc_ratings_acked",
            "Ratings acknowledged to their terminals on the ack topic, stored or dead-lettered",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "svc_spool_bytes", "Messages waiting on disk for InfluxDB to come back", registry=r
        )
        self.pending = Gauge(
            "svc_messages_pending",
            "Messages taken but not yet stored and acknowledged",
            registry=r,
        )
        self.write_seconds = Histogram(
            "svc_influx_write_seconds",
            "Time of one successful InfluxDB write request",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def taken(self, topics: list[str], redelivered: int) -> None:
        """Count messages taken off MQTT by topic kind, and those the broker sent again."""
        kinds = collections.Counter(topic.rpartition("/")[2] for topic in topics)
        for kind, count in kinds.items():
            self.received.labels(kind if kind in KINDS else "other").inc(count)
        if redelivered:
            self.redelivered.inc(redelivered)

    def stored_lines(self, lines: list[str]) -> None:
        """Count points InfluxDB accepted, by measurement (what starts each line)."""
        measurements = collections.Counter(line.partition(",")[0] for line in lines)
        for measurement, count in measurements.items():
            self.stored.labels(measurement).inc(count)

    def rejected_total(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for metric in self.rejected.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["reason"]] = int(sample.value)
        return found


def serve(
    address: str, metrics: Metrics, health: Callable[[], dict[str, bool]]
) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on host:port in a daemon thread (port 0: any free one)."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif self.path == "/healthz":
                checks = health()
                ok = all(checks.values())
                body = json.dumps({"status": "ok" if ok else "failing", **checks}).encode()
                self._reply(200 if ok else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"not found\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are not worth a log line each

    host = host or "127.0.0.1"
    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    log.info("http_listening", address=f"{host}:{server.server_port}")
    return server
