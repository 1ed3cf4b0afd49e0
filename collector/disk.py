"""What a file needs before the collector may say it is on disk."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def sync_folder(directory: Path) -> None:
    """A new or renamed file is durable only once its folder is synced too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_synced(path: Path, body: bytes) -> None:
    """Append body to the file and sync it to disk (its folder too, when the file is new).
    Raises OSError when the disk refuses (full, or failing), after taking back what part of
    it was written where it can, so that no torn tail is left before the next append."""
    new = not path.exists()
    size = 0 if new else path.stat().st_size
    try:
        with path.open("ab") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        if new:
            sync_folder(path.parent)
    except OSError:
        with contextlib.suppress(OSError):
            if new:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
        raise
