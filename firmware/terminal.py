# The rating terminal: turns button presses into ratings and delivers them
# to the broker with QoS 1, keeping each until its PUBACK arrives.
import asyncio
import random

import protocol
from mqtt import MQTTClient

BACKOFF_MIN_S = 1
BACKOFF_MAX_S = 60


class Outgoing:
    """A rating on its way: its payload, and the packet id once published."""

    def __init__(self, seq, payload):
        self.seq = seq
        self.payload = payload
        self.pid = None
        self.sent = False


class Terminal:
    def __init__(self, board, settings, counters):
        self.board = board
        self.settings = settings
        self.counters = counters
        self.outbox = []
        self._wake = asyncio.Event()
        root, site, device = settings["topic_root"], settings["site"], settings["device"]
        self.rating_topic = protocol.topic(root, site, device, "rating")
        self.state_topic = protocol.topic(root, site, device, "state")
        # One client for the terminal's life: its packet ids keep counting across
        # reconnects, so a resent rating never shares an id with a new one.
        self.client = self._client()

    def on_press(self, button):
        buttons = self.settings["buttons"]
        if not 0 <= button < len(buttons):
            self.board.emit("stray", button=button)
            return
        seq = self.counters.next_seq()
        message = protocol.rating(
            seq=seq,
            boot=self.counters.boot,
            ts=self.board.now_ms(),
            score=buttons[button],
            counter=self.settings["counter"],
            staff=self.settings["staff"],
            mode="free",
        )
        self.outbox.append(Outgoing(seq, protocol.encode(message)))
        self.board.show("thanks")
        self.board.emit("rated", seq=seq, score=buttons[button])
        self._wake.set()

    def on_puback(self, pid):
        for i, item in enumerate(self.outbox):
            if item.pid == pid and item.sent:
                del self.outbox[i]
                self.board.emit("acked", seq=item.seq)
                return

    async def run(self):
        link = asyncio.create_task(self._keep_connected())
        while True:
            kind, value = await self.board.next_input()
            if kind == "quit":
                link.cancel()
                return
            self.on_press(value)

    def _client(self):
        host, port, user, password = self.settings["broker_addr"]
        client = MQTTClient(
            self.settings["device"], host, port, user, password, self.settings["keepalive_s"]
        )
        client.set_last_will(self.state_topic, protocol.encode(protocol.state(False)), True, 1)
        client.on_puback = self.on_puback
        return client

    async def _keep_connected(self):
        """Connect, serve, and on any failure reconnect with backoff and jitter."""
        delay = BACKOFF_MIN_S
        while True:
            if await self.board.network_up():
                client = self.client
                tasks = []
                try:
                    await client.connect(clean_session=False)
                    self.board.emit("connected")
                    self.board.show("idle")
                    delay = BACKOFF_MIN_S
                    state = protocol.state(True, self.counters.boot)
                    await client.publish(self.state_topic, protocol.encode(state), 1, True)
                    tasks = [
                        asyncio.create_task(self._send_outbox(client)),
                        asyncio.create_task(self._ping(client)),
                    ]
                    await client.read_loop(self.settings["keepalive_s"] * 1.5)
                except Exception as e:  # any failure of the link means: reconnect
                    self.board.emit("disconnected", reason=repr(e))
                    self.board.show("offline")
                finally:
                    for task in tasks:
                        task.cancel()
                    client.close()
                    for item in self.outbox:
                        item.sent = False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _send_outbox(self, client):
        """Publish every rating not yet sent on this connection, oldest first.

        A rating sent on an earlier connection goes again with its packet id
        and the DUP flag, as the persistent session expects.
        """
        while True:
            self._wake.clear()
            for item in list(self.outbox):
                if not item.sent:
                    dup = item.pid is not None
                    item.pid = await client.publish(
                        self.rating_topic, item.payload, 1, False, item.pid, dup
                    )
                    item.sent = True
            if all(item.sent for item in self.outbox):
                await self._wake.wait()

    async def _ping(self, client):
        while True:
            await asyncio.sleep(self.settings["keepalive_s"] / 2)
            await client.ping()
