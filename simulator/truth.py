"""Ground truth: every rating the simulator caused, one JSON line each, as it was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class GroundTruth:
    """Appends records to a JSONL file; flushed at close and whenever flush() is called."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w", encoding="utf-8")

    def record(self, rating: dict[str, Any]) -> None:
        self._file.write(json.dumps(rating, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
