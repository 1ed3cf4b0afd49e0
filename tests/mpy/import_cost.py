# Run under the MicroPython Unix port with the firmware's image on the path:
# imports what main.py imports and prints, as JSON, where each of the
# terminal's modules came from and what the imports cost the heap.
import gc
import json
import sys

gc.collect()
before = gc.mem_alloc()
import board_unix  # noqa: E402,F401
import config  # noqa: E402,F401
import outbox  # noqa: E402,F401
import protocol  # noqa: E402,F401
import settings  # noqa: E402,F401
import store  # noqa: E402,F401
import terminal  # noqa: E402,F401

gc.collect()
cost = gc.mem_alloc() - before
own = [m.__file__ for name, m in sys.modules.items() if not name.startswith("asyncio")]
print(json.dumps([sorted(own), cost]))
