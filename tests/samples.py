"""Messages shared by several tests, as the contract (docs/contract.md) shows them."""

from __future__ import annotations

RATING_EXAMPLE = {
    "v": 1,
    "seq": 1042,
    "boot": 17,
    "ts": 1795347568123,
    "score": 4,
    "reason": None,
    "counter": "03",
    "staff": "E1023",
    "ticket": "A023",
    "mode": "prompt",
    "wait_ms": 1830,
}
