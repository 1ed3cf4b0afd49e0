# The boot loader's choice of the image to run (main.py runs it at every boot, then drops
# it: its bytecode would cost the heap for nothing).
#
# This module and main.py stay on the board's file system (svc-firmware deploy writes them)
# and no update over the air replaces them, so an image that fails can always be left. A new
# image runs on trial until it has connected and had a rating acknowledged (update.py then
# confirms it in slot.json); one that raises at its start, is reset by the watchdog, boots
# TRIAL_BOOTS times unconfirmed (a crash loop) or gives up for want of a link (update.py
# marks it) is left here for the image before it. docs/firmware.md, "Over the air".
import json
import os
import sys

SLOT_FILE = "slot.json"  # store.SLOT_FILE: the loader imports nothing of the image
TRIAL_BOOTS = 3


def mount():
    """What a board's own boot leaves to the loader: on an ESP32, the second ROM partition
    mounted at /rom1 (MicroPython mounts the first at /rom). Returns "watchdog" after a
    watchdog reset."""
    if sys.platform == "esp32":
        import esp32
        import machine
        import vfs

        second = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="romfs1")
        try:
            if second:  # and holds an image: one half written is no file system
                vfs.mount(vfs.VfsRom(second[0].mmap()), "/rom1")
        except OSError:
            pass
        return "watchdog" if machine.reset_cause() == machine.WDT_RESET else None
    import simflash  # the Unix port's: main.py has booted it

    return simflash.reset_cause


def choose(state, cause):
    """The slot to run (None: the image deploy put in place), state brought up to date: a
    trial image leaves for the one before it on any of the grounds above."""
    if state.get("trial"):
        state["boots"] = state.get("boots", 0) + 1
        why = state.get("give_up")
        if cause == "watchdog":
            why = "watchdog reset"
        elif state["boots"] > TRIAL_BOOTS:
            why = "crash loop: %d boots unconfirmed" % TRIAL_BOOTS
        if why:
            roll_back(state, why)
    return state.get("active")


def roll_back(state, why):
    """Back to the image before the trial one, which is not taken again when offered."""
    state["update"] = {"sha256": state.get("sha256"), "result": "rolled_back", "why": why}
    state["refused"] = state.get("sha256")
    state["active"] = state.get("previous")
    state["sha256"] = state.get("previous_sha256")
    for key in ("trial", "boots", "give_up", "previous", "previous_sha256"):
        state.pop(key, None)
    print(json.dumps({"ev": "rolled_back", "why": why, "slot": state["active"]}))


def use(slot):
    """The slot's modules first on the path: a ROM partition's mount point, or a folder of
    the file system ("fw0", "fw1"); the first ROM partition off the path when the second
    runs (its modules would be found for any the image lacks)."""
    if slot is None:
        return
    if slot[0] != "/":
        slot = os.getcwd().rstrip("/") + "/" + slot
    elif slot == "/rom1":
        sys.path[:] = [p for p in sys.path if not p.startswith("/rom")]
    sys.path.insert(0, slot)


def load():
    try:
        with open(SLOT_FILE) as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save(state):
    with open(SLOT_FILE + ".tmp", "w") as f:
        json.dump(state, f)
    os.rename(SLOT_FILE + ".tmp", SLOT_FILE)


def reset():
    if sys.platform == "esp32":
        import machine

        machine.reset()
    import simflash

    simflash.note_reset("rollback")
    sys.exit(3)


def boot():
    """Choose the image and put it first on the path; how it boots: "update" (slot.json
    holds an offer to fetch: update.py), "trial" or "run"."""
    cause = mount()
    state = load()
    trial = state.get("trial")
    use(choose(state, cause))
    if trial:
        save(state)
    if state.get("trial"):
        return "trial"
    return "update" if "fetch" in state else "run"


def failed(error):
    """The trial image raised at its start (`error`, as repr() gives it): back to the one
    before it, at once; or the update boot raised: the offer set aside as failed, and the
    image that runs runs again."""
    state = load()
    offer = state.pop("fetch", None)
    if offer is None:
        roll_back(state, "failed at its start: " + error)
    else:
        sha = offer.get("sha256") if isinstance(offer, dict) else None
        state["refused"] = sha
        state["update"] = {"sha256": sha, "result": "failed", "why": error}
    save(state)
    reset()
