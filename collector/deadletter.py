"""Rejected messages, kept with their reason in a JSONL file, logged and counted.

A dead-lettered rating is acknowledged to its terminal, which then forgets it: so its record
must be on disk first. Records are kept in memory as they come (from either thread) and
`flush()` writes and syncs them; the collector flushes before it acknowledges a batch, and holds
the acknowledgements while the disk refuses (full, or failing) instead of stopping.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from pathlib import Path

import structlog
from prometheus_client import Counter

from collector.disk import append_synced, sync_folder

log = structlog.get_logger("collector")


class DeadLetters:
    def __init__(self, path: Path, rejected: Counter) -> None:
        self.path = path
        self.rejected = rejected  # by reason
        self._lock = threading.Lock()
        self._pending: list[str] = []  # records not yet on disk, in order
        self._failing = False
        path.parent.mkdir(parents=True, exist_ok=True)
        # there from the start, so that reading it (operations.md) works before the first, and
        # its name durable; a disk that refuses is told by flush(), when there is something to keep
        with contextlib.suppress(OSError):
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
                sync_folder(path.parent)

    def record(self, topic: str, payload: bytes, reason: str, kind: str) -> None:
        """Count, log and keep one record for the next flush(); never raises."""
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
        with self._lock:
            self._pending.append(json.dumps(entry, ensure_ascii=False) + "\n")

    def flush(self) -> bool:
        """Write the records kept so far and sync them to disk; False (all kept for the next
        try, nothing torn left in the file where it can be helped) while the disk refuses."""
        with self._lock:
            if not self._pending:
                return True
            try:
                append_synced(self.path, "".join(self._pending).encode())
            except OSError as e:
                if not self._failing:
                    log.error("deadletter_failed", error=str(e), waiting=len(self._pending))
                self._failing = True
                return False
            if self._failing:
                log.info("deadletter_recovered", written=len(self._pending))
            self._failing = False
            self._pending.clear()
            return True
