"""The audit trail: who did what, when, to what, with the record before and after."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def record(
    db: sqlite3.Connection,
    actor: str,
    action: str,
    subject: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: float | None = None,
) -> None:
    """One entry; a secret never goes in `before` or `after` (the caller leaves it out)."""
    db.execute(
        "INSERT INTO audit (at, actor, action, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        (
            time.time() if at is None else at,
            actor,
            action,
            subject,
            None if before is None else json.dumps(before, ensure_ascii=False, sort_keys=True),
            None if after is None else json.dumps(after, ensure_ascii=False, sort_keys=True),
        ),
    )
