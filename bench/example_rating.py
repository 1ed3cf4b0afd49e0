"""The rating the benches send, built by the contract's own function (the example of
docs/contract.md)."""

from __future__ import annotations

from firmware import contract

EXAMPLE = contract.rating(
    seq=1042,
    boot=17,
    ts=1795347568123,
    score=4,
    reason=None,
    counter="03",
    staff="E1023",
    ticket="A023",
    mode="prompt",
    wait_ms=1830,
)
