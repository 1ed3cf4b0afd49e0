"""Rejected messages, kept with their reason in a JSONL file, logged and counted."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import structlog
from prometheus_client import Counter

log = structlog.get_logger("collector")


class DeadLetters:
    def __init__(self, path: Path, rejected: Counter) -> None:
        self.path = path
        self.rejected = rejected  # by reason
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, topic: str, payload: bytes, reason: str, kind: str) -> None:
        """Append one record and flush it to disk before the message is acknowledged."""
        self.rejected.labels(kind).inc()
        log.warning("rejected", topic=topic[:200], kind=kind, reason=reason)
        try:
            text: str | None = payload.decode()
            raw = None
        except UnicodeDecodeError:
            text, raw = None, base64.b64encode(payload).decode()
        entry = {
            "received_ms": int(time.time() * 1000),
            "topic": topic,
            "kind": kind,
            "reason": reason,
            "payload": text,
            "payload_b64": raw,
        }
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
