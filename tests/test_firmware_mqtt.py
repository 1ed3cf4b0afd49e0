"""The terminal's MQTT client under the MicroPython Unix port, against a peer that reads slowly:
what several tasks publish at once arrives whole and in order."""

from __future__ import annotations

import socket
import threading
import time

from fwtools.unix_port import FIRMWARE_DIR, run_script

SCRIPT = FIRMWARE_DIR.parent / "tests" / "mpy" / "mqtt_backpressure.py"
CONNACK = bytes([0x20, 2, 0, 0])


def read_packets(conn: socket.socket) -> list[tuple[int, bytes]]:
    """Every MQTT packet until the peer closes: (first byte, body)."""
    data = bytearray()
    while chunk := conn.recv(65536):
        data += chunk
    packets = []
    pos = 0
    while pos < len(data):
        first, length, shift = data[pos], 0, 0
        pos += 1
        while True:
            digit = data[pos]
            pos += 1
            length |= (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        packets.append((first, bytes(data[pos : pos + length])))
        pos += length
    return packets


class SlowPeer(threading.Thread):
    """Accepts one client, answers its CONNECT, then reads nothing for a while: the client's
    socket buffer fills, and its publishers wait for room."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.port = self.server.getsockname()[1]
        self.packets: list[tuple[int, bytes]] = []

    def run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(CONNACK)  # the client reads it after its CONNECT
            time.sleep(1)
            self.packets = read_packets(conn)
        self.server.close()


def test_publishes_from_several_tasks_arrive_whole_while_the_socket_is_full(micropython):
    peer = SlowPeer()
    peer.start()
    tasks, count, size = 3, 1500, 2000
    result = run_script(SCRIPT, str(peer.port), str(tasks), str(count), str(size), timeout_s=30)
    peer.join(10)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert peer.packets[0][0] == 0x10  # CONNECT first
    publishes = [body for first, body in peer.packets if first & 0xF0 == 0x30]
    assert len(publishes) == tasks * count
    seen: dict[int, list[int]] = {t: [] for t in range(tasks)}
    for body in publishes:
        topic_len = int.from_bytes(body[:2], "big")
        payload = body[2 + topic_len + 2 :]  # after the topic and the packet id
        assert len(payload) == size
        task, index = (int(part) for part in payload.split(b":")[:2])
        seen[task].append(index)
    assert all(indices == list(range(count)) for indices in seen.values())
    assert peer.packets[-1][0] == 0xE0  # DISCONNECT last
