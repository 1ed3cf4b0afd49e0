"""Points InfluxDB could not take yet, on disk, oldest first.

While InfluxDB is unreachable the collector keeps taking messages: each batch's points go
into one file here (written, flushed to disk and renamed into place before its messages are
acknowledged), and are written to InfluxDB in order when it returns. The spool is bounded;
when full, the collector stops acknowledging and the broker holds the rest. Files left by a
crash are written at the next start; a batch written twice lands on the same points.
"""

from __future__ import annotations

import os
from pathlib import Path


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):
            stale.unlink()  # a write cut short: its messages were never acknowledged
        self._files = sorted(directory.glob("*.lp"))
        self.bytes = sum(p.stat().st_size for p in self._files)
        self._next = int(self._files[-1].stem) + 1 if self._files else 1

    def __len__(self) -> int:
        return len(self._files)

    def append(self, lines: list[str]) -> bool:
        """Keep a batch durably; False (nothing written) when it would pass max_bytes."""
        body = "\n".join(lines).encode()
        if self.bytes + len(body) > self.max_bytes:
            return False
        path = self.dir / f"{self._next:012d}.lp"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
        self._next += 1
        self._files.append(path)
        self.bytes += len(body)
        return True

    def oldest(self) -> tuple[Path, list[str]] | None:
        if not self._files:
            return None
        path = self._files[0]
        return path, path.read_text().split("\n")

    def remove(self, path: Path) -> None:
        self.bytes -= path.stat().st_size
        path.unlink()
        self._files.remove(path)
