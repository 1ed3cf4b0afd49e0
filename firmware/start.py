# The terminal's start, on the ESP32 and under the MicroPython Unix port alike (only the
# board module differs): main.py, the boot loader, runs it from the image it chose.
import asyncio
import sys

import protocol
import store

if sys.platform == "esp32":
    from board_esp32 import Board
else:
    from board_unix import Board


def load_settings(board):
    """The settings file, or None (the board shows why). The module is needed only here,
    and goes once it is done: its 2 KB are a good part of what a terminal's heap has free."""
    import settings

    try:
        values = settings.load("settings.json", board.device_id())
    except (settings.SettingsError, ValueError) as e:
        board.emit("error", msg=str(e))
        board.show("error")
        del sys.modules["settings"]
        return None
    try:  # settings offered over the air, tried until the broker accepts them (offered.py)
        values["next_broker"] = settings.offered(store.NEXT_SETTINGS)
    except (settings.SettingsError, ValueError):  # none (or none it could use: never tried)
        pass
    finally:
        del sys.modules["settings"]
    return values


def main(update_boot=False):
    """Settings, config, counters and outbox from flash, then the terminal, for ever; or
    the update boot (update.py), to its reset."""
    board = Board()
    board.mount_flash()
    values = load_settings(board)
    if values is None:
        return
    if update_boot:
        import update

        update.main(board, values)
        return
    if values["voice_module"]:
        board.use_voice_module()
    from config import Config
    from outbox import Outbox
    from terminal import Terminal

    counters = store.Counters("counters.json")
    config = Config("config.json", values)
    box = Outbox("queue", values["queue_bytes"])
    board.emit("boot", boot=counters.boot, seq=counters.seq, queue=len(box), fw=protocol.FW_VERSION)
    asyncio.run(Terminal(board, values, config, counters, box).run())
