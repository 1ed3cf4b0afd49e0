# The terminal's boot: the loader (slots.py) chooses the image to run and is dropped, then
# the image's start.py runs the terminal (or, an update offered, the update boot). This file
# and slots.py stay on the board's file system; no update over the air replaces them
# (docs/firmware.md, "Over the air").
import gc
import sys

if sys.platform != "esp32":
    import simboot  # the simulated board's own boot, as an ESP32's mounts its flash

    simboot.boot()
    del sys.modules["simboot"]
    del simboot
import slots

how = slots.boot()
del sys.modules["slots"]
del slots
gc.collect()
booted = list(sys.modules)
try:
    import start

    start.main(update_boot=how == "update")
except Exception as e:
    if how == "run":
        raise
    why = repr(e)
    del e
    for name in list(sys.modules):  # the failed image's: the heap they hold compiles the loader
        if name not in booted:
            del sys.modules[name]
    gc.collect()
    import slots

    slots.failed(why)
