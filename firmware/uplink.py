# The terminal's link: Wi-Fi, the MQTT session and all that travels on it.
#
# Ratings leave the flash queue only when a collector acknowledges storing
# them on the terminal's ack topic (docs/contract.md), not when the broker
# has them: a broker that restarts or crashes before delivering loses
# nothing. Up to IN_FLIGHT of the oldest ratings are out at once, so an
# outage's backlog drains at the collector's pace; one not acknowledged
# within ack_wait is sent again (the wait doubling while nothing comes back,
# so a long collector outage is not flooded), and every one again on each new
# connection. Every copy carries the same seq: the collector stores it once.
# The oldest, still unacknowledged after rounds of resends while later ones
# were acknowledged, is moved to the tail of the queue: kept and sent again
# later, a rating the collector cannot take blocks none after it.
#
# Telemetry, the retained state and its will, config, prompts and the offer of
# an update (fetched by the update boot, update.py) go the same way; the clock
# is kept here too, since NTP needs the network. Runs
# unchanged under MicroPython (the terminal) and CPython (scale mode).
import asyncio
import json
import random

import contract
import outbox
import protocol
import store
from config import ConfigError
from mqtt import MQTTClient, tls_context
from ticks import ms

BACKOFF_MIN_S = 1
WIFI_POLL_S = 0.25  # while Wi-Fi is down, its return is looked for this often
IN_FLIGHT = 128  # ratings sent ahead of their acks
WINDOW_READ = 8  # records read from flash at a time while sending
ACK_WAIT_MS = 10000  # an unacknowledged rating is sent again after this...
ACK_WAIT_MAX_MS = 160000  # ...doubling up to this while no ack comes
HEAD_SAVE_MS = 500  # how far the queue is acknowledged goes to flash at most this often
STALLED_ROUNDS = 2  # resend rounds that find the head unacknowledged, later ones not: it moves
TIME_RESYNC_S = 6 * 3600
TIME_RETRY_S = 30
TIME_WAIT_MS = 300 * 1000  # unstamped ratings of this boot wait this long for the clock


def client_for(settings):
    """The terminal's MQTT client, as its settings give the broker and its account."""
    host, port, user, password = settings["broker_addr"]
    ca = settings.get("tls_ca")
    tls = tls_context(ca) if ca else None  # one context for the client's life
    return MQTTClient(
        settings["device"],
        host,
        port,
        user,
        password,
        settings["keepalive_s"],
        tls,
        contract.DEVICE_READ_BYTES,
    )


class Uplink:
    """on_link(up) and on_prompt(ticket) are the terminal's: plain functions."""

    def __init__(self, board, settings, config, counters, box, on_link, on_prompt):
        self.board = board
        self.slot = store.load(store.SLOT_FILE, {})  # the last update's result, a trial
        self.settings = settings
        self.config = config
        self.counters = counters
        self.outbox = box
        self.on_link = on_link
        self.on_prompt = on_prompt
        self.connected = False
        self.stuck = []  # keys held down, for state and telemetry
        self.started = ms()
        # seqs acknowledged behind one that is not yet, as a dict's keys: MicroPython's set is
        # left corrupt when its growth meets a full heap (its dict is not)
        self.acked = {}
        self._sent_upto = 0  # the newest seq sent on this connection
        self._round_at = ms()  # when the head last moved, or everything went again
        self._forgotten = 0  # ratings forgotten since boot: how far the head has moved
        self._stalled = 0  # resend rounds since the head moved that found later ones acked
        self._epoch = None  # the calendar's ms at ms() 0, once known: the late stamps' base
        self._undated_upto = 0  # the newest seq of this boot sent without ts for good
        self._ack_wait = ACK_WAIT_MS
        self._head_saved_at = ms()
        self._send_at = ms()  # when the sender wants to look again without a wake
        self._wake = asyncio.Event()
        self._report_pending = False
        self._report_task = None
        self._time_synced = None
        self._time_at = None
        self._down = asyncio.Event()  # the connection must end
        self._why = None
        self._state_task = None
        self._wifi_up = None
        self._clock_awaited = False
        self._backoff = BACKOFF_MIN_S
        root, site, device = settings["topic_root"], settings["site"], settings["device"]
        self.topic_prefix = contract.topic(root, site, device, "")  # a topic is this + kind
        # One client for the terminal's life: its packet ids keep counting across reconnects.
        self.client = client_for(settings)
        self.next_broker = settings.pop("next_broker", None)  # settings offered: tried first
        qos, retain, _ = contract.DEVICE_TOPICS["state"]
        will = protocol.encode(protocol.state(False))
        self.client.set_last_will(self.topic_prefix + "state", will, retain, qos)
        self.client.on_message = self._on_message
        self.client.on_too_large = self._on_too_large

    def queued(self):
        """A rating was queued (or the clock learnt): send what is due."""
        self._wake.set()

    def state_changed(self):
        """Publish the state as it is now (a key stuck and freed at once is still reported)."""
        if self.connected:  # the task is kept: CPython's loop holds tasks only weakly
            publishing = self._publish("state", self._state())
            self._state_task = asyncio.create_task(self._linked(publishing))

    # --- staying linked ---

    async def run(self):
        """Wi-Fi, then MQTT; a broker failure is retried with backoff and jitter, a Wi-Fi
        loss is waited out and the broker tried again as soon as Wi-Fi is back."""
        while True:
            if not await self._network() or not self._clock_for_tls():
                await asyncio.sleep(WIFI_POLL_S)
                continue
            offered = self.next_broker is not None and self.overair().account(self)
            at_once = False
            try:
                await self._serve(offered)
            except Exception as e:  # any failure of the link means: reconnect
                self.board.emit("disconnected", reason=repr(e))
                at_once = self.next_broker is not None and self.overair().refused(self, e, offered)
            finally:
                if self.connected:
                    self.connected = False
                    self.on_link(False)
                await self.client.close()
            if self.board.wifi_connected() and not at_once:
                await asyncio.sleep(self._backoff * (0.5 + random.random()))
                self._backoff = min(self._backoff * 2, self.settings["reconnect_max_s"])

    async def _network(self):
        board = self.board
        up = board.wifi_connected()
        if not up:
            s = self.settings
            up = await board.wifi_connect(s["wifi_ssid"], s["wifi_password"])
        if up != self._wifi_up:
            self._wifi_up = up
            board.emit("wifi", up=up)
        return up

    def _clock_for_tls(self):
        """Whether a broker's certificate can be checked: its dates need the calendar, which
        an ESP32 learns only from NTP after boot (ratings queue meanwhile)."""
        if self.client.ssl is None or self.board.wall_ms() is not None:
            return True
        if not self._clock_awaited:
            self._clock_awaited = True
            self.board.emit("tls_waits_for_clock")
        return False

    async def _serve(self, offered):
        client = self.client
        self._down.clear()
        await client.connect(clean_session=False)
        if offered:
            self.overair().take(self)
        self.connected = True
        self._backoff = BACKOFF_MIN_S
        self._sent_upto = 0  # what went out on an earlier connection may never have arrived
        for kind in ("config", "prompt", "ack", "update"):
            await client.subscribe(self.topic_prefix + kind, contract.DEVICE_TOPICS[kind][0])
        await self._publish("state", self._state())
        self.board.emit("connected")  # and listening: a prompt sent from now on arrives
        self.on_link(True)
        tasks = [
            asyncio.create_task(self._linked(coro))
            for coro in (client.read_loop(), self._send_ratings(), self._tick())
        ]
        try:
            await self._down.wait()
        finally:
            for task in tasks:
                task.cancel()
        raise OSError(self._why)

    async def _linked(self, coro):
        """A task of one connection: its failure ends the connection."""
        try:
            await coro
        except Exception as e:
            self._why = repr(e)
            self._down.set()

    def wifi_lost(self):
        """End the connection now: for a board that hears of a Wi-Fi loss at once."""
        self._why = "Wi-Fi lost"
        self._down.set()

    async def _tick(self):
        """The connection's clock, every wifi_poll_ms (the board says how often): end the
        connection as soon as Wi-Fi goes or the broker falls silent, ping, wake the sender
        when it is due, and report telemetry at once and then every telemetry_s. Nothing
        else on the link waits with a time-out: asyncio.wait_for costs a task and about
        1 KB while it waits, and a task about 0.7 KB, of a terminal's small heap."""
        client = self.client
        keepalive_ms = self.settings["keepalive_s"] * 1000
        period_s = self.board.wifi_poll_ms / 1000
        last_ping = ms()
        report_at = None
        while True:
            now = ms()
            if not self.board.wifi_connected():
                raise OSError("Wi-Fi lost")
            if (now - client.received_at) * 2 > keepalive_ms * 3:
                raise OSError("the broker fell silent")
            if self.next_broker is not None and self.overair().again(self, now):
                raise OSError("the settings offered are tried again")
            if (now - last_ping) * 2 >= keepalive_ms:
                last_ping = now
                await client.ping()
            if now >= self._send_at:
                self._wake.set()
            if report_at is None or now - report_at >= self.config["telemetry_s"] * 1000:
                report_at = now
                await self._report()
            await asyncio.sleep(period_s)

    # --- ratings and their acks ---

    async def _send_ratings(self):
        """Keep the oldest IN_FLIGHT ratings out, each sent once on this connection; when the
        head of the queue has waited the ack wait since it last moved (or since the last
        round), send every one not yet acknowledged again, and wait twice as long next time.
        Two numbers, not a table per rating: the heap of a terminal is small. The first pass
        of a connection sends every one, a rating moved behind newer ones (_requeue) too."""
        fresh = True
        while True:
            self._wake.clear()
            now = ms()
            pause = self._ack_wait - (now - self._round_at)
            if not self.outbox.head_saved:  # a power cut before this resends, harmlessly
                if now - self._head_saved_at >= HEAD_SAVE_MS or not len(self.outbox):
                    self.outbox.save_head()
                    self._head_saved_at = now
                else:
                    pause = min(pause, HEAD_SAVE_MS)
            head = self.outbox.peek()
            if head is None or outbox.seq_of(head) > self._sent_upto:
                self._round_at = now  # nothing out: the wait starts with what goes now
                pause = self._ack_wait
            again = pause <= 0
            if again:
                self._round_at = now
                self._ack_wait = min(self._ack_wait * 2, ACK_WAIT_MAX_MS)
                if self.acked:  # ratings after the head were acknowledged, the head not
                    self._stalled += 1
                    if self._stalled >= STALLED_ROUNDS:
                        self._requeue()
                pause = self._ack_wait
            if await self._send_window(again or fresh) is None:
                pause = min(pause, 1000)  # one waits for the clock to stamp it
            fresh = False
            self._send_at = now + pause
            await self._wake.wait()

    async def _send_window(self, again):
        """Send the window's ratings not sent yet (again: and those sent, not acknowledged),
        in order, a few records read at a time; None when one waits for the clock. Acks
        arriving meanwhile move the head: the next read starts that much earlier."""
        start = 0
        while start < IN_FLIGHT:
            forgotten = self._forgotten
            records = self.outbox.oldest(WINDOW_READ, start)
            for record in records:
                seq = outbox.seq_of(record)
                if seq in self.acked or (seq <= self._sent_upto and not again):
                    continue
                payload = self._payload(record)
                if payload is None:
                    return None  # nothing after it goes before it
                await self._publish("rating", payload)
                if seq <= self._sent_upto:
                    self.board.emit("resent", seq=seq)
                else:
                    self._sent_upto = seq
            if len(records) < WINDOW_READ:
                break
            start = max(0, start + len(records) - (self._forgotten - forgotten))
        return True

    async def _publish(self, kind, payload):
        """On the terminal's own topic of this kind, with the contract's QoS and retain flag."""
        qos, retain, _ = contract.DEVICE_TOPICS[kind]
        await self.client.publish(self.topic_prefix + kind, payload, qos, retain)

    def _payload(self, record):
        """The wire message, or None while it waits for the clock. Every copy of a rating
        repeats its first: one of this boot pressed before the clock was known is stamped
        at its first sending, the stamp written into its record before the copy goes (later
        copies, after any reboot, read it there), or, once the clock has been awaited
        TIME_WAIT_MS in vain, goes undated for good. Its undated copies of this boot are
        known by _undated_upto (one number, not a table: the heap is small), those of later
        boots by their boot: a rating of an earlier boot left unstamped always goes undated."""
        fields = outbox.decode(record)
        at = fields.pop("at")
        seq = fields["seq"]
        if at is not None and fields["boot"] == self.counters.boot and seq > self._undated_upto:
            if self._epoch is None and self.board.wall_ms() is not None:
                self._epoch = self.board.wall_ms() - ms()  # every late stamp alike from now
            if self._epoch is None and ms() - self.started < TIME_WAIT_MS:
                return None  # and nothing after it goes before it
            try:
                if self._epoch is not None and self.outbox.stamp(seq, at + self._epoch):
                    fields["ts"] = at + self._epoch
            except OSError as e:  # the flash failing: it goes undated instead, for good
                self.board.emit("stamp_failed", seq=seq, reason=repr(e))
            if fields["ts"] is None:
                self._undated_upto = seq
        return protocol.encode(contract.rating(**fields))

    def _on_ack(self, message):
        """Forget the acknowledged ratings at the head of the queue; keep the rest in mind
        until the ones before them are acknowledged too (few: acks mostly come in order,
        and a table of a whole message's seqs would cost a small heap 1 KB)."""
        seqs = contract.acked_seqs(message)
        acked = self.acked
        gone = self.outbox.forget(lambda seq: seq in acked or seq in seqs, self._gone, False)
        if len(self.outbox) > 1:  # ratings behind the head: their acks wait for it
            oldest = outbox.seq_of(self.outbox.peek())
            for seq in seqs:
                if oldest < seq <= self.counters.seq:  # else forgotten already, or never ours
                    acked[seq] = True
        if not acked or len(self.outbox) < 2:
            acked.clear()  # a dict keeps its largest table until cleared
        if gone:
            self._round_at = ms()
            self._ack_wait = ACK_WAIT_MS
            self._wake.set()

    def _gone(self, seq):
        """A rating acknowledged has left the queue (and a trial image has proved itself)."""
        self.acked.pop(seq, None)
        self._forgotten += 1
        self._stalled = 0
        self.board.emit("acked", seq=seq)
        if self.slot.get("trial"):
            self.overair().confirm(self)

    def _requeue(self):
        """Move the head, unacknowledged while ratings after it were, to the tail of the
        queue, the same bytes, and forget those acknowledged behind it. An ack of the moved
        one that comes while newer ratings are ahead of it is let go (it cannot be told from
        a late ack of one forgotten already): a copy sent once it is the head again is
        acknowledged then."""
        seq = self.outbox.requeue()
        self._stalled = 0
        self.counters.bump("requeued")
        self.board.emit("requeued", seq=seq)
        acked = self.acked
        self.outbox.forget(lambda s: s in acked, self._gone, False)
        self._ack_wait = ACK_WAIT_MS
        self.state_changed()

    # --- what the broker brings ---

    def _on_message(self, topic, payload, retained):
        """A message on the terminal's config, prompt or ack topic. Whatever it holds, it
        never ends the link: a failure in handling it (a flash write's OSError, a heap too
        small for its JSON) is reported, and it is acknowledged all the same (mqtt.py does,
        after this: a power cut before then brings it again)."""
        prefix = self.topic_prefix
        kind = topic[len(prefix) :] if topic.startswith(prefix) else None
        try:
            try:
                message = json.loads(payload)
            except ValueError:
                message = None
            if kind == "update":
                self.overair().on_offer(self, message if payload else None)
            elif kind == "ack":
                self._on_ack(message)
            elif kind == "config":
                self._on_config(message)
            elif kind == "prompt":
                if isinstance(message, dict):
                    self.on_prompt(contract.clean_ticket(message.get("ticket")))
                else:
                    self.board.emit("prompt_rejected", payload=repr(message))
        except Exception as e:
            self.board.emit("message_failed", kind=kind, reason=repr(e))

    def overair(self):
        """overair.py (an offer noted, a trial image confirmed, settings offered tried
        first), imported only when one of them comes: the heap pays for every name."""
        import overair

        return overair

    def _on_too_large(self, topic, length):
        """A message longer than the terminal reads was let go unread (mqtt.py)."""
        self.board.emit("too_large", kind=topic[len(self.topic_prefix) :], bytes=length)

    def _on_config(self, message):
        config = self.config
        login = (config["counter"], config["staff"])  # the state says them: read back
        try:
            changed = config.apply(message)
        except ConfigError as e:
            self.board.emit("config_rejected", reason=str(e))
            return
        except OSError as e:  # in use all the same, and saved when it comes again
            self.board.emit("config_unsaved", reason=repr(e))
            changed = ()
        else:
            self.board.emit("config", changed=changed)
        if "telemetry_s" in changed:
            self.report_now()
        if (config["counter"], config["staff"]) != login:
            self.state_changed()

    # --- state and telemetry ---

    def _state(self):
        """The retained state's payload as things are now."""
        config = self.config
        state = protocol.state(True, self.counters.boot, config["counter"], config["staff"])
        if self.slot.get("update"):
            state["update"] = self.slot["update"]
        if self.stuck:
            state["stuck_keys"] = self.stuck
        for name in ("dropped", "requeued"):
            if self.counters.stats[name]:
                state[name] = self.counters.stats[name]
        return protocol.encode(state)

    async def _report(self):
        """One telemetry report, as things are now."""
        if self.counters.dirty:
            self.counters.save()
        message = protocol.telemetry(
            boot=self.counters.boot,
            uptime_s=(ms() - self.started) // 1000,
            rssi=self.board.rssi(),
            heap_free=self.board.heap_free(),
            queue=len(self.outbox),
            battery_mv=self.board.battery_mv(),
            stats=self.counters.stats,
            stuck_keys=self.stuck,
            time_known=self.board.wall_ms() is not None,
        )
        await self._publish("telemetry", protocol.encode(message))
        self._report_pending = False

    def report_now(self):
        """Send telemetry now, without waiting for the next report (or, offline, as soon as
        the link is back: a new connection reports at once)."""
        self._report_pending = True
        if self.connected:  # kept, like the state's task
            self._report_task = asyncio.create_task(self._linked(self._report()))

    @property
    def reported(self):
        """No report asked for by report_now() is still waiting to be sent."""
        return not self._report_pending

    # --- time ---

    def keep_time(self):
        """Synchronise the clock when it is due: every TIME_RESYNC_S once it worked, every
        TIME_RETRY_S until then. Called often (the terminal's supervisor does, every
        half second) instead of from a task of its own, which would cost the heap."""
        now = ms()
        wait_s = TIME_RESYNC_S if self._time_synced else TIME_RETRY_S
        if self._time_at is not None and now - self._time_at < wait_s * 1000:
            return
        self._time_at = now
        ok = self.board.wifi_connected() and self.board.sync_time(self.settings["ntp_host"])
        if ok != self._time_synced:
            self.board.emit("time", synced=ok)
            self._time_synced = ok
            self._wake.set()
