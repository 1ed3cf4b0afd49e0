"""The real firmware, under the MicroPython Unix port, on the hall's TLS broker: it checks the
broker by its CA and name before it says a word, and delivers its ratings end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker import pki
from broker.folder import init
from devstack import CollectorProcess, InfluxServer, collector_env
from firmware import contract
from fwtools.unix_port import firmware_module
from simulator.terminal_process import FirmwareTerminal
from tests.hall import COLLECTOR, SITE, Hall
from tests.servers import wait_for

KEPT = {  # what an installer put in the settings file before svc-broker add-device
    "topic_root": contract.ROOT,
    "counter": "01",
    "staff": "E1001",
    "ask_reason": False,
    "keepalive_s": 4,
    "reconnect_max_s": 2,
}


def terminal_of(hall: Hall, device: str, folder: Path, **changes: Any) -> FirmwareTerminal:
    settings = json.loads(hall.add_device(SITE, device, **KEPT).read_text())
    return FirmwareTerminal(folder, {**settings, **changes})


def rate(terminal: FirmwareTerminal, seq: int, button: int = 0) -> None:
    terminal.clerk_key()
    terminal.wait_count("opened", seq)
    terminal.press(button)
    terminal.wait_for(lambda e: e["ev"] == "rated" and e["seq"] == seq)


def refused_for(terminal: FirmwareTerminal, words: str) -> None:
    """The terminal tries, fails the handshake for this reason, and never connects; a
    customer's rating is still taken and queued."""
    terminal.start()
    try:
        failed = terminal.wait_for(lambda e: e["ev"] == "disconnected", timeout_s=20)
        assert words in failed["reason"], failed
        rate(terminal, 1)
        terminal.wait_count("disconnected", 2, timeout_s=20)  # and again, with backoff
        assert terminal.of_kind("connected") == []
    finally:
        terminal.stop()


def test_the_firmware_delivers_over_tls_with_its_account(
    hall: Hall, influxdb: InfluxServer, database: str, micropython: str, tmp_path: Path
):
    service = hall.add_service(COLLECTOR, "collector")
    env = collector_env(contract.ROOT, database, COLLECTOR, service)
    collector = CollectorProcess(hall.broker, influxdb, tmp_path / "collector", env)
    collector.start()
    terminal = terminal_of(hall, "t01", tmp_path / "t01")
    assert terminal.settings["broker"].startswith("mqtts://localhost:")
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "connected", timeout_s=30)
        for seq, button in ((1, 0), (2, 3)):  # scores 1 and 4 with the default buttons
            rate(terminal, seq, button)
        for seq in (1, 2):
            terminal.wait_acked(seq, timeout_s=20)
    finally:
        terminal.stop()
        collector.stop()
    rows = wait_for(
        lambda: influxdb.query('SELECT "seq", "device" FROM "rating"', database),
        lambda found: len(found) >= 2,
    )
    assert [(r["device"], r["seq"]) for r in rows] == [("t01", 1), ("t01", 2)]
    log = "\n".join(json.dumps(e) for e in terminal.events)
    assert all(secret not in log for secret in hall.passwords.values())


def test_the_firmware_refuses_a_broker_signed_by_another_ca(
    hall: Hall, micropython: str, tmp_path: Path
):
    stranger = init(tmp_path / "stranger", "127.0.0.1:1", "localhost")
    refused_for(
        terminal_of(hall, "t01", tmp_path / "t01", broker_ca=stranger.ca_cert.read_text()),
        "not correctly signed",
    )


def test_the_firmware_refuses_a_broker_named_for_another_host(
    hall: Hall, micropython: str, tmp_path: Path
):
    """The hall's CA signed it, but for another server: a stolen certificate of another
    broker of the same hall's CA would do no better."""
    ca = pki.Issued(hall.folder.ca_cert.read_bytes(), (hall.folder.path / "ca.key").read_bytes())
    other = pki.make_server(ca, ["broker.elsewhere.example"])
    (hall.folder.path / "server.crt").write_bytes(other.cert_pem)
    (hall.folder.path / "server.key").write_bytes(other.key_pem)
    hall.broker.restart()
    refused_for(terminal_of(hall, "t01", tmp_path / "t01"), "expected CN")


def test_without_the_time_the_firmware_waits_to_connect_and_queues_ratings(
    hall: Hall, micropython: str, tmp_path: Path
):
    """A certificate's dates need the calendar: no NTP, no connection; ratings are queued."""
    terminal = terminal_of(hall, "t01", tmp_path / "t01", sim={"ntp": False})
    terminal.start()
    try:
        terminal.wait_for(lambda e: e["ev"] == "tls_waits_for_clock", timeout_s=20)
        rate(terminal, 1)
        assert terminal.of_kind("connected") == [] and terminal.of_kind("disconnected") == []
    finally:
        terminal.stop()


@pytest.mark.parametrize(
    ("broker", "port"), [("mqtts://b.example", 8883), ("mqtts://b.example:9883", 9883)]
)
def test_a_settings_file_for_tls_holds_the_ca_as_der(tmp_path: Path, broker: str, port: int):
    settings_fw = firmware_module("settings")
    folder = init(tmp_path / "b", "127.0.0.1:1", "b.example")
    path = tmp_path / "settings.json"
    base = {
        "site": "ha01",
        "device": "t01",
        "broker": broker,
        "broker_user": "ha01/t01",
        "broker_password": "pw",
    }
    path.write_text(json.dumps({**base, "broker_ca": folder.ca_cert.read_text()}))
    loaded = settings_fw.load(str(path))
    assert loaded["broker_addr"] == ("b.example", port, "ha01/t01", "pw")
    ca = x509.load_pem_x509_certificate(folder.ca_cert.read_bytes())
    assert loaded["tls_ca"] == ca.public_bytes(serialization.Encoding.DER)
    path.write_text(json.dumps(base))
    with pytest.raises(settings_fw.SettingsError, match="broker_ca"):
        settings_fw.load(str(path))
