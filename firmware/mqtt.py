# A small asyncio MQTT 3.1.1 client for the rating terminal.
#
# Like umqtt.simple, its API mirrors the protocol (connect, publish, subscribe,
# ping, disconnect) and adds nothing of its own, no reconnect loop, no queue,
# but a limit on what it reads: a small heap cannot hold whatever a broker
# brings. Unlike umqtt.simple it never blocks the event loop. Its owner (uplink.py)
# decides when to reconnect and what to send again; it does not wait for
# PUBACKs, since a rating leaves the terminal only on a collector's ack.
# Runs unchanged under MicroPython and CPython.
import asyncio
import struct

from ticks import ms

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0
PIECE_BYTES = 256  # a packet is read this much at a time: no allocation as large as it


class MQTTError(Exception):
    pass


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first_byte, body):
    n = len(body)
    head = bytearray([first_byte])
    while True:
        digit = n & 0x7F
        n >>= 7
        head.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(head) + body


def _no_delay(writer):
    """TCP_NODELAY (IPPROTO_TCP 6, option 1 on Linux and lwIP alike; the Unix port names
    neither): a small packet goes at once instead of waiting for the last one's ACK, which
    costs tens of ms when a PUBACK and a PUBLISH follow each other. CPython's asyncio sets it
    itself."""
    sock = getattr(writer, "s", None)  # MicroPython's Stream holds its socket here
    setsockopt = getattr(sock, "setsockopt", None)  # a TLS socket has none to reach
    if setsockopt is not None:
        try:
            setsockopt(6, 1, 1)
        except OSError:
            pass


def tls_context(ca_der):
    """A client context that checks the broker: its certificate signed by this CA and naming
    the host connected to. MicroPython's context checks nothing unless told (CERT_NONE), and
    its ESP32 build takes the CA only as DER. On an ESP32 a TLS connection holds about 25 KB
    of ESP-IDF's heap (outside MicroPython's) and its handshake takes a second or more: the
    terminal keeps one connection open for as long as it can."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]  # the stubs lack it
    context.load_verify_locations(cadata=ca_der)
    return context


class MQTTClient:
    """One connection to a broker, over TLS when given an SSL context (tls_context()).

    on_message(topic: str, payload: bytearray, retained: bool), on_puback(pid: int) and
    on_too_large(topic: str, length: int) are called from read_loop(); all are plain
    functions, and any may be None. A QoS 1 message is acknowledged once on_message has
    returned (what it raises ends read_loop, unacknowledged). A PUBLISH whose remaining
    length passes max_packet (the terminal's: contract.DEVICE_READ_BYTES) is not held:
    on_too_large is told instead.
    """

    def __init__(
        self,
        client_id,
        host,
        port=1883,
        user=None,
        password=None,
        keepalive=60,
        ssl=None,
        max_packet=1024,
    ):
        self.client_id = client_id
        self.ssl = ssl
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.max_packet = max_packet
        self.will = None
        self.on_message = None
        self.on_puback = None
        self.on_too_large = None
        self._reader = None
        self._writer = None
        # One sender at a time: MicroPython's Stream.drain() loses what another task writes
        # while it waits for the socket, and a second task waiting to write fails an assert
        self._sending = asyncio.Lock()
        self._pid = 0
        self.received_at = ms()  # when the broker last sent anything

    def set_last_will(self, topic, payload, retain=False, qos=0):
        self.will = (topic, payload, retain, qos)

    def next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def connect(self, clean_session=False, timeout_s=10):
        """Open the socket and send CONNECT; returns the broker's session-present flag."""
        if self.ssl is None:
            opening = asyncio.open_connection(self.host, self.port)
        else:  # the certificate must name the host in the broker's URL
            opening = asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, server_hostname=self.host
            )
        self._reader, self._writer = await asyncio.wait_for(opening, timeout_s)
        _no_delay(self._writer)
        flags = 0 if not clean_session else 0x02
        payload = _str(self.client_id)
        if self.will:
            topic, msg, retain, qos = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _str(topic) + _str(msg)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive) + payload
        await self._send(_packet(CONNECT, body))
        resp = await asyncio.wait_for(self._reader.readexactly(4), timeout_s)  # type: bytes
        if resp[0] != CONNACK or resp[1] != 2:
            raise MQTTError("bad CONNACK")
        if resp[3] != 0:  # the code as the error's second argument
            raise MQTTError("connection refused, code %d" % resp[3], resp[3])
        self.received_at = ms()
        return bool(resp[2] & 1)

    async def publish(self, topic, payload, qos=0, retain=False, pid=None, dup=False):
        """Send PUBLISH; for QoS 1 returns the packet id whose PUBACK will follow."""
        first = PUBLISH | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
        body = _str(topic)
        if qos:
            pid = pid or self.next_pid()
            body += struct.pack("!H", pid)
        await self._send(_packet(first, body + payload))
        return pid

    async def subscribe(self, topic, qos=1):
        pid = self.next_pid()
        body = struct.pack("!H", pid) + _str(topic) + bytes([qos])
        await self._send(_packet(SUBSCRIBE, body))
        return pid

    async def ping(self):
        await self._send(bytes([PINGREQ, 0]))

    async def disconnect(self):
        try:
            await self._send(bytes([DISCONNECT, 0]))
        finally:
            await self.close()

    async def close(self):
        """Close the socket for real: MicroPython's StreamWriter.close() only marks it, and
        the socket stays open (and the broker keeps the session alive) until wait_closed()."""
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            try:
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass

    async def read_loop(self):
        """Read packets until the connection fails; raises OSError then.

        No timeout of its own (a wait_for would cost a task and a kilobyte of a small
        heap): the owner pings, and ends a connection whose received_at grows too old.
        """
        while True:
            first = (await self._read(1))[0]
            self.received_at = ms()
            length = await self._read_length()
            if first & 0xF0 == PUBLISH:
                await self._on_publish(first, length)
            elif length > 4:  # a PUBACK, SUBACK or PINGRESP is shorter
                raise MQTTError("packet 0x%02x of %d bytes" % (first, length))
            else:
                await self._dispatch(first, await self._read(length) if length else b"")

    async def _dispatch(self, first, body):
        kind = first & 0xF0
        if kind == PUBACK:
            if self.on_puback:
                self.on_puback(struct.unpack("!H", body[:2])[0])
        elif kind not in (SUBACK, PINGRESP):
            raise MQTTError("unexpected packet 0x%02x" % first)

    async def _on_publish(self, first, length):
        """Read a PUBLISH of this remaining length from the stream, its payload into a
        bytearray of its own size, PIECE_BYTES at a time: no allocation larger than the
        payload, nor a second copy. One longer than max_packet, or one the heap has no room
        for now, is read all the same and let go (a retained one comes again at every
        subscribe: MemoryError would end every connection), and reported to on_too_large.
        Acknowledged once handled: a power cut before then brings it again."""
        n = struct.unpack("!H", await self._read(2))[0]
        topic = (await self._read(n)).decode()
        left = length - 2 - n
        pid = None
        if (first >> 1) & 3:
            pid = struct.unpack("!H", await self._read(2))[0]
            left -= 2
        payload = None
        if length <= self.max_packet:
            try:
                payload = bytearray(left)
            except MemoryError:
                pass
        got = 0
        while got < left:
            piece = await self._read(min(left - got, PIECE_BYTES))
            if payload is not None:
                payload[got : got + len(piece)] = piece
            got += len(piece)
        if payload is None:
            if self.on_too_large:
                self.on_too_large(topic, length)
        elif self.on_message:
            self.on_message(topic, payload, bool(first & 1))
        if pid is not None:
            await self._send(bytes([PUBACK, 2]) + struct.pack("!H", pid))

    async def _read(self, n):
        if self._reader is None:
            raise OSError("not connected")
        try:
            return await self._reader.readexactly(n)
        except EOFError:
            raise OSError("connection closed by broker")

    async def _read_length(self):
        n = 0
        shift = 0
        while True:
            b = (await self._read(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    async def _send(self, data):
        async with self._sending:
            if self._writer is None:
                raise OSError("not connected")
            self._writer.write(data)
            await self._writer.drain()
