"""Import the firmware's plain-MicroPython modules under CPython for unit tests."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from simulator.firmware import FIRMWARE_DIR


def firmware_module(name: str) -> ModuleType:
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    return importlib.import_module(name)
