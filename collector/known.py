"""The roster of known devices: a text file, one `site/device` a line (`#` starts a comment),
as `svc-broker` writes it (devices.txt in the broker's folder). Read again when it changes, so
a terminal added to a running hall is known without a restart: looked at once a second, and
at once for a device not on it (its first rating may follow its account by milliseconds)."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import structlog

log = structlog.get_logger("collector")

LOOK_EVERY_S = 1.0


class KnownDevices:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: frozenset[str] = frozenset()
        self._stamp: tuple[int, int] | None = None  # (mtime ns, size) of what was read
        self._looked_at = 0.0
        self._unreadable: Exception | None = None
        self._look()
        if self._stamp is None:  # an empty roster would dead-letter the whole hall
            failed = self._unreadable
            code = failed.errno if isinstance(failed, OSError) else errno.EINVAL  # not UTF-8
            why = f"the roster of known devices cannot be read: {failed}"
            raise OSError(code, why, str(path))

    def knows(self, site: str, device: str) -> bool:
        name = f"{site}/{device}"
        if time.monotonic() - self._looked_at >= LOOK_EVERY_S or name not in self._names:
            self._look()  # a stat, and a read only when the file changed
        return name in self._names

    def names(self) -> frozenset[str]:
        """Every `site/device` on the roster now (read again once a second at most)."""
        if time.monotonic() - self._looked_at >= LOOK_EVERY_S:
            self._look()
        return self._names

    def _look(self) -> None:
        """Read the file again if it changed; a file gone or unreadable keeps the last roster
        (and says so), since forgetting every device would dead-letter the whole hall."""
        self._looked_at = time.monotonic()
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            log.error("roster_unreadable", path=str(self.path), error=str(e), kept=len(self._names))
            self._unreadable = e
            return
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        self._names = frozenset(line for line in lines if line)
        self._stamp = stamp
        log.info("roster_read", path=str(self.path), devices=len(self._names))
