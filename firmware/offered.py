# Settings offered over the air (update.py saved them as settings.next.json): another broker
# account, tried first at each link, and kept once the broker has accepted it; refused, the
# account the terminal has is used, and the offered one tried again later, so a rotation never
# locks a terminal out: the broker keeps the old password until the next rotation
# (svc-broker add-device --replace). Functions of the uplink's, imported only while some
# settings are on offer: the heap is small.
import os

import store
from mqtt import MQTTError, tls_context
from ticks import ms

RETRY_MS = 300 * 1000  # settings offered and refused are tried again after this
REFUSED_LOGIN = (4, 5)  # CONNACK: bad user name or password; not authorised


def account(uplink):
    """Give the client the account to log in with now: the settings offered (update.py
    saved them) unless the broker refused them within RETRY_MS; True for those."""
    client = uplink.client
    if not hasattr(uplink, "tls"):  # what this module keeps, on the uplink while needed
        uplink.tls, uplink.next_tls, uplink.next_refused_at = client.ssl, None, None
    refused_at = uplink.next_refused_at
    offered = uplink.next_broker is not None and (
        refused_at is None or ms() - refused_at >= RETRY_MS
    )
    if offered:
        (client.host, client.port, client.user, client.password), ca = uplink.next_broker
        if uplink.next_tls is None and ca:
            uplink.next_tls = tls_context(ca)
        client.ssl = uplink.next_tls
    else:
        client.host, client.port, client.user, client.password = uplink.settings["broker_addr"]
        client.ssl = uplink.tls
    return offered


def refused(uplink, error, offered):
    """A login refused (bad name or password, not authorised) while settings are on
    offer: the other account at once, whichever the broker accepts. True for at once."""
    code = error.args[1] if isinstance(error, MQTTError) and len(error.args) > 1 else None
    if code not in REFUSED_LOGIN or uplink.next_broker is None:
        return False
    uplink.next_refused_at = ms() if offered else None
    uplink.board.emit("login_refused", offered=offered)
    return True


def take(uplink):
    """The broker accepted the settings offered: they are the terminal's from now on
    (settings.json replaced whole), and the state says so."""
    os.rename(store.NEXT_SETTINGS, "settings.json")
    uplink.settings["broker_addr"], uplink.settings["tls_ca"] = uplink.next_broker
    uplink.tls, uplink.next_broker = uplink.next_tls, None
    report = uplink.slot.get("update") or {}
    uplink.slot["update"] = {"sha256": report.get("sha256"), "result": "ok"}
    store.save(store.SLOT_FILE, uplink.slot)
    uplink.board.emit("settings_taken", user=uplink.client.user)


def again(uplink, now):
    """Whether to end a link on the account the terminal has, to try the offered one again."""
    refused_at = getattr(uplink, "next_refused_at", None)
    return refused_at is not None and now - refused_at >= RETRY_MS
