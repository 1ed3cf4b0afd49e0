# The update boot: the terminal's image replaced over the air (docs/firmware.md, "Over the
# air").
#
# The running terminal only notes an offer (uplink.py) and, once no rating window is open,
# resets into this boot (slots.py chooses it while slot.json holds an offer), so the
# download has the heap to itself: a 64 KB heap holds the terminal or an update, not both.
# Here the terminal links with its own account, fetches the image a few chunks at a time
# (`fetch`, answered on `chunk` by `svc-firmware publish`), writes it in order into the slot
# it does not run from (its second ROM partition, or a folder of the file system on a board
# without one), reads it back to check the digest, switches to it in slot.json, on trial,
# and resets; an offer it cannot take is refused, and it resets into the image that runs.
# The queued ratings, the seq and the boot count are files of their own, untouched.
import asyncio
import binascii
import hashlib
import os
import sys

import contract
import protocol
import store
from ticks import ms
from uplink import client_for

# The update's part of the contract (docs/contract.md, topics update, fetch and chunk): here,
# not in contract.py, which the running terminal imports (its heap pays for every name); the
# update boot imports this module, and the tools and the collector take these names from it.
UPDATE_KINDS = ("image", "settings")  # a new image; new broker settings (an account)
CHUNK_BYTES = 512  # a chunk's data: with its header and topic, within DEVICE_READ_BYTES
CHUNK_TAG = 16  # a chunk names what it is of by this many hex digits of the digest
FETCH_CHUNKS = 4  # chunks a terminal asks for at once
SHA256_HEX = 64  # what is offered is named by its SHA-256, in lowercase hex
SETTINGS_MAX = 4096  # bytes of settings offered: a broker's URL, account and CA
# the last update's result in a terminal's state (its `update`: sha256, result, why)
UPDATE_RESULTS = ("trial", "ok", "refused", "failed", "rolled_back")

FOLDERS = ("fw0", "fw1")  # a folder board's slots; the image deploy wrote runs from the root
IMAGE_DOWNLOAD = "update.bin"  # a folder board's image, unpacked into its slot once checked
SETTINGS_DOWNLOAD = "settings.bin"
ROM_SLOTS = ("/rom", "/rom1")  # a ROM board's: its two partitions' mount points
FETCH_WAIT_MS = 5000  # chunks asked for and not come are asked for again after this...
FETCH_TRIES = 12  # ...this many times, then the update has failed
DEADLINE_MS = 300000  # the whole update boot, link included, at most
TICK_MS = 100
READ_BYTES = 256  # flash read this much at a time


def main(board, settings):
    """The update boot, to its reset (start.py's open_board() gave the board, settings)."""
    asyncio.run(UpdateBoot(board, settings).run())


class UpdateBoot:
    def __init__(self, board, settings):
        self.board = board
        self.settings = settings
        self.state = store.load(store.SLOT_FILE, {})
        self.updater = Updater(board, settings["device"], self.state)
        self.started = ms()

    async def run(self):
        board = self.board
        board.show("update")
        offer = self.state.pop("fetch", None)
        if self.updater.begin(offer):
            while self.updater.offer is not None and not self.updater.ready:
                if ms() - self.started >= DEADLINE_MS:
                    self.updater.fail("no link, or no chunks, for %d s" % (DEADLINE_MS // 1000))
                    break
                try:
                    await self._fetch()
                except Exception as e:  # the link failing: again, within the deadline
                    board.emit("disconnected", reason=repr(e))
                    await asyncio.sleep_ms(1000)
        if self.updater.ready and self.updater.image():
            self.updater.switch()  # slot.json: the new image, on trial
        else:  # refused, failed, or settings to try (settings.next.json)
            store.save(store.SLOT_FILE, self.state)  # the offer refused, or failed
        board.reset("update")

    async def _fetch(self):
        """One connection: Wi-Fi, the clock a TLS broker's certificate needs, then the
        chunks until the image is written and checked, or the update fails."""
        board, settings = self.board, self.settings
        if not board.wifi_connected():
            await board.wifi_connect(settings["wifi_ssid"], settings["wifi_password"])
        if settings.get("tls_ca") and board.wall_ms() is None:
            board.sync_time(settings["ntp_host"])
        if not board.wifi_connected() or (settings.get("tls_ca") and board.wall_ms() is None):
            await asyncio.sleep_ms(1000)
            return
        client = client_for(settings)
        prefix = contract.topic(settings["topic_root"], settings["site"], settings["device"], "")
        client.on_message = lambda topic, payload, retained: self.updater.on_chunk(payload)
        try:
            await client.connect(clean_session=True)  # its own short session: nothing queued
            await client.subscribe(prefix + "chunk", contract.DEVICE_TOPICS["chunk"][0])
            reader = asyncio.create_task(client.read_loop())
            await self._ask(client, prefix + "fetch", reader)
        finally:
            await client.close()

    async def _ask(self, client, topic, reader):
        updater = self.updater
        keepalive_ms = self.settings["keepalive_s"] * 1000
        pinged = ms()
        try:
            while updater.offer is not None and not updater.ready:
                if reader.done():
                    raise OSError("the link ended")
                now = ms()
                fetch = updater.due(now)
                if fetch:
                    await client.publish(topic, protocol.encode(fetch), 0)
                if (now - pinged) * 2 >= keepalive_ms:
                    pinged = now
                    await client.ping()
                if now - self.started >= DEADLINE_MS:
                    return
                await asyncio.sleep_ms(TICK_MS)
        finally:
            reader.cancel()


class Updater:
    """An offer fetched in chunks, written and checked. `state` is slot.json's content."""

    def __init__(self, board, device, state):
        self.board = board
        self.device = device
        self.state = state
        self.offer = None  # the offer being fetched
        self.ready = False  # fetched and checked: switch()
        self._sink = self._digest = self._buf = None
        self._slot = None
        self._done = 0  # bytes written
        self._asked_at = None
        self._asked_upto = 0
        self._tries = 0

    def begin(self, offer):
        """Start on the offer slot.json holds; False (and the result noted) when refused."""
        settings = isinstance(offer, dict) and offer.get("kind") == "settings"
        capacity = SETTINGS_MAX if settings else self._capacity()
        problem = offer_problem(offer, self.device, capacity)
        if problem:
            sha = offer.get("sha256") if isinstance(offer, dict) else None
            self._result(sha, "refused", problem)
            if sha:
                self.state["refused"] = sha
            return False
        try:
            self._open(offer["size"], settings)
        except OSError as e:
            return self.fail("slot not writable: %r" % (e,), offer)
        self.offer = offer
        self.board.emit("update_fetching", sha256=offer["sha256"], slot=self._slot)
        return True

    def image(self):
        """Whether what is fetched is an image (else settings)."""
        return self._slot is not None

    def due(self, now):
        """The fetch to send now, or None: the next chunks once those asked for have come,
        the same again when they have not within FETCH_WAIT_MS."""
        if self.offer is None or self.ready:
            return None
        if self._asked_at is not None and now - self._asked_at < FETCH_WAIT_MS:
            return None
        if self._asked_at is not None:
            self._tries += 1
            if self._tries > FETCH_TRIES:
                self.fail("no chunks came")
                return None
        self._asked_at = now
        self._asked_upto = self._done + FETCH_CHUNKS * CHUNK_BYTES
        return fetch(self.offer["sha256"], self._done)

    def on_chunk(self, payload):
        """A chunk: written if it is the next of the offer's, anything else let go."""
        header = chunk_header(payload)
        offer, sink = self.offer, self._sink
        if header is None or offer is None or sink is None or self.ready:
            return
        offset, tag, start = header
        sha, size = offer["sha256"], offer["size"]
        if tag != sha[:CHUNK_TAG] or offset != self._done:
            return
        length = len(payload) - start
        if length == 0 or self._done + length > size:
            self._refuse("%d bytes served of the %d offered" % (self._done + length, size))
            return
        try:
            sink.write(self._done, memoryview(payload)[start:])
            self._done += length
            self._tries = 0
            if self._done == size:
                self._check(sha, size, sink)
            elif self._done >= self._asked_upto:
                self._asked_at = None  # ask for the next ones now
        except OSError as e:  # the flash failing
            self.fail("write failed: %r" % (e,))

    def fail(self, why, offer=None):
        """The update could not be done now: noted, and not tried again until offered
        afresh (svc-firmware publish offers afresh). Returns False."""
        return self._set_aside("failed", why, offer)

    # --- writing and checking ---

    def _capacity(self):
        """The largest image the slot to write takes."""
        rom = self.board.rom_partition(0)
        if rom is not None:
            return rom.capacity
        st = os.statvfs(".")
        return st[0] * st[4] // 3  # the download, its files, and room for the queue to grow

    def _open(self, size, settings):
        active = self.state.get("active")
        rom = None if settings else self.board.rom_partition(1 if active != ROM_SLOTS[1] else 0)
        if rom is not None:
            self._slot = ROM_SLOTS[1] if active != ROM_SLOTS[1] else ROM_SLOTS[0]
            self._sink = rom
        else:  # a file: imported only then
            from download import Download

            if settings:
                self._slot, self._sink = None, Download(SETTINGS_DOWNLOAD)
            else:
                self._slot = FOLDERS[1] if active == FOLDERS[0] else FOLDERS[0]
                self._sink = Download(IMAGE_DOWNLOAD)
        self._sink.erase(size)
        self._digest = hashlib.sha256()
        self._buf = bytearray(READ_BYTES)

    def _check(self, sha, size, sink):
        """The whole image written: its digest read back from flash, the offer's or refused;
        a folder board's unpacked into its slot."""
        digest, buf = self._digest, self._buf
        if digest is None or buf is None:
            return
        done = 0
        while done < size:
            n = sink.read(done, buf)
            if n <= 0:
                break
            n = min(n, size - done)
            digest.update(memoryview(buf)[:n])
            done += n
        if binascii.hexlify(digest.digest()).decode() != sha:
            self._refuse("its digest is not the one offered")
            return
        try:
            if self._slot in FOLDERS:
                sink.unpack(self._slot)
            elif self._slot is None:
                self._next_settings(sink.path)
        except (OSError, ValueError, TypeError) as e:
            self._refuse("not what was offered: %s" % (e,))
            return
        self.ready = True
        if self._slot is None:  # settings: tried by the terminal, kept once the broker takes them
            self.state["update"] = {"sha256": sha, "result": "trial"}
        self.board.emit(
            "update_ready", sha256=sha, slot=self._slot, heap_free=self.board.heap_free()
        )

    def _next_settings(self, path):
        """Settings offered: checked as at boot, over the terminal's (settings.offered()),
        and kept as settings.next.json (the offered keys alone), which the terminal tries at
        each link (overair.py) and merges into its settings once the broker accepts them."""
        import settings

        try:
            settings.offered(path)
        except settings.SettingsError as e:
            raise ValueError(str(e))
        finally:
            del sys.modules["settings"]
        os.rename(path, store.NEXT_SETTINGS)
        self.state["settings"] = self.offer["sha256"] if self.offer else None

    def _refuse(self, why):
        self._set_aside("refused", why)

    def _set_aside(self, result, why, offer=None):
        """The offer (this one, or the one being fetched) not taken again until offered
        afresh, the result noted; the download stopped. Returns False."""
        offer = offer or self.offer
        sha = offer["sha256"] if offer else None
        self.state["refused"] = sha
        self._stop()
        self._result(sha, result, why)
        return False

    def _stop(self):
        self.offer = None
        self._sink = self._digest = self._buf = None

    def _result(self, sha, result, why):
        self.state["update"] = {"sha256": sha, "result": result, "why": why}
        self.board.emit("update_" + result, sha256=sha, why=why)

    def switch(self):
        """Run the new image from the next boot on, on trial."""
        state, offer = self.state, self.offer
        if offer is None:
            return
        sha = offer["sha256"]
        new = {
            "active": self._slot,
            "sha256": sha,
            "previous": state.get("active"),
            "previous_sha256": state.get("sha256"),
            "trial": True,
            "update": {"sha256": sha, "result": "trial"},
        }
        if "refused" in state:
            new["refused"] = state["refused"]
        store.save(store.SLOT_FILE, new)


# --- the wire: what the terminal checks of an offer and a chunk, and asks ---


def _is_sha256(value):
    """64 lowercase hex digits (read without iterating: each character would be a string)."""
    if not isinstance(value, str) or len(value) != SHA256_HEX or value != value.lower():
        return False
    try:
        binascii.unhexlify(value)
    except ValueError:
        return False
    return True


def offer_problem(message, device, capacity):
    """Why a terminal may not take this offer (it names another device, a size it has no
    room for...), or None when it may."""
    if not isinstance(message, dict) or message.get("v") != contract.VERSION:
        return "not an offer"
    if message.get("kind") not in UPDATE_KINDS:
        return "kind %r is not offered" % (message.get("kind"),)
    if message.get("device") != device:
        return "offered to another device"
    size = message.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= capacity:
        return "size %r: room for 1 to %d bytes" % (size, capacity)
    if not _is_sha256(message.get("sha256")):
        return "sha256 must be 64 hex digits"
    return None


def fetch(sha256, offset, count=FETCH_CHUNKS):
    return {"v": contract.VERSION, "sha256": sha256, "offset": offset, "count": count}


def chunk_header(payload):
    """(offset, tag, where the data starts) of a chunk's payload, or None if it is none. A
    chunk is a header line `OFFSET TAG` (TAG: the digest's first CHUNK_TAG hex
    digits), then the bytes of the image from OFFSET; none at or past its end."""
    end = payload.find(b"\n", 0, 40)
    if end < 0:
        return None
    offset, _, tag = bytes(payload[:end]).partition(b" ")
    try:
        return int(offset), tag.decode(), end + 1
    except (ValueError, UnicodeError):
        return None
