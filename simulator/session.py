"""One run of a scenario, in either mode, played in a thread while the live view is drawn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from simulator import live
from simulator.access import Access
from simulator.fidelity import FidelityRun
from simulator.scale import ScaleRun
from simulator.scenario import Scenario
from simulator.truth import GroundTruth

Runner = ScaleRun | FidelityRun


def runner(
    mode: str,
    chosen: Scenario,
    access: Access,
    root: str,
    truth: GroundTruth,
    *,
    workdir: Path,
    restart_broker: Callable[[float], None] | None,
) -> Runner:
    """Scale mode's virtual terminals, or real firmware processes kept under workdir."""
    if mode == "scale":
        return ScaleRun(chosen, access, root, truth, restart_broker)
    return FidelityRun(
        chosen,
        access,
        root,
        truth,
        workdir=workdir.resolve(),
        restart_broker=restart_broker,
    )


def play(
    run: Runner,
    console: Console,
    *,
    quiet: bool,
    duration_s: float | None = None,
    headline: Callable[[], str] | None = None,
) -> None:
    """Run in a thread, drawing the live view (or, quiet, a status line every 10 s) with the
    headline above it. At duration_s, or on stop_event (set by Ctrl-C here or a signal
    elsewhere), the run stops after the action in hand, and what was sent is still settled."""
    player = threading.Thread(
        target=(lambda: asyncio.run(run.run())) if isinstance(run, ScaleRun) else run.run,
        name="run",
    )
    player.start()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    view = None if quiet else Live(console=console, auto_refresh=False)

    def draw() -> None:
        top = headline() if headline else live.status(run.progress)
        if view is None:
            console.print(top, highlight=False)
        else:
            view.update(Group(Text(top, style="bold"), live.view(run.progress)), refresh=True)

    try:
        with view or nullcontext():
            while player.is_alive():
                try:
                    if deadline is not None and time.monotonic() >= deadline:
                        run.stop_event.set()
                    draw()
                    player.join(10 if view is None else 0.5)
                except KeyboardInterrupt:
                    run.stop_event.set()
            draw()
    finally:  # a failure here still ends the run, and with it every terminal it started
        run.stop_event.set()
        player.join()
