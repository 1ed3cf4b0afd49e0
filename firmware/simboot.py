# What an ESP32's own boot does before main.py, for the simulated board under the Unix port:
# the flash mounted (at /flash) and made the working folder, what the deploy put in the host
# folder installed, the reset cause read. main.py runs it, then drops it.
import os

import simflash
import vfs


def boot():
    """Mount the flash at /flash and work there; install settings.json and the boot loader
    (slots.py) from the host folder when they differ from those installed last (what
    `svc-firmware deploy` does to a board: settings changed over the air since are kept);
    read the reset cause."""
    host = simflash.host = os.getcwd()
    flash = simflash.FileFlash("flash.img")
    if flash.fresh:
        vfs.VfsLfs2.mkfs(flash)  # type: ignore[arg-type]  # the stubs want their own ABC
    deployed = _read("settings.json")
    try:
        simflash.reset_cause = _read("reset_cause")
        os.remove("reset_cause")
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(flash), "/flash")  # type: ignore[abstract, arg-type]  # stub errors
    os.chdir("/flash")
    if deployed is not None and deployed != _read("deployed.json"):
        _write(("settings.json", "deployed.json"), deployed)
    loader = _read(host + "/slots.py")
    if loader is not None and loader != _read("slots.py"):
        _write(("slots.py",), loader)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(names, text):
    for name in names:
        with open(name, "w") as f:
            f.write(text)
