"""What a file needs before the collector may say it is on disk."""

from __future__ import annotations

import os
from pathlib import Path


def sync_folder(directory: Path) -> None:
    """A new or renamed file is durable only once its folder is synced too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
