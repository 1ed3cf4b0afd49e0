# Entry point: the terminal on the simulated Unix board, run from the
# device's own folder (settings.json there, counters kept there).
import asyncio

import protocol
import settings
import store
from board_unix import Board
from terminal import Terminal


def main():
    board = Board()
    try:
        config = settings.load("settings.json")
    except settings.SettingsError as e:
        board.emit("error", msg=str(e))
        board.show("error")
        return
    counters = store.Counters("counters.json")
    board.emit("boot", boot=counters.boot, seq=counters.seq, fw=protocol.FW_VERSION)
    asyncio.run(Terminal(board, config, counters).run())


main()
