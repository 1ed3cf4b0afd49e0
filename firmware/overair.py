# What the running terminal does about updates over the air (docs/firmware.md, "Over the
# air"), functions of the uplink's and the terminal's, imported only when one comes: the heap
# pays for every name. An offer is noted in slot.json (the update boot, update.py, fetches
# it); an image on trial is confirmed by the first rating acknowledged, or gives up without a
# link; settings offered (settings.next.json) are another broker account, tried first at each
# link and kept once the broker has accepted it; refused, the account the terminal has is
# used, and the offered one tried again later, so a rotation never locks a terminal out: the
# broker keeps the old password until the terminal has taken the new one (svc-broker
# add-device --replace, svc-broker retire).
import os

import store
from mqtt import MQTTError, tls_context
from ticks import ms

RETRY_MS = 300 * 1000  # settings offered and refused are tried again after this
TRIAL_LINK_MS = 600 * 1000  # an image on trial that has not linked in this long gives up
REFUSED_LOGIN = (4, 5)  # CONNACK: bad user name or password; not authorised


def on_offer(uplink, message):
    """An update offered (None: the offer withdrawn, and one refused before may be taken
    again). One to fetch is noted in slot.json: the terminal resets into the update boot
    (update.py) once no window is open, and the download has the heap to itself."""
    slot = uplink.slot
    if message is None:
        if slot.pop("refused", None):
            store.save(store.SLOT_FILE, slot)
        return
    sha = message.get("sha256") if isinstance(message, dict) else None
    if not isinstance(sha, str) or not sha:  # no offer the update boot could name
        uplink.board.emit("offer_ignored", payload=repr(message)[:80])
        return
    last = slot.get("update") or {}
    taken = last.get("sha256") if last.get("result") in ("trial", "ok") else None
    if slot.get("trial") or sha in (slot.get("sha256"), slot.get("refused"), taken):
        return  # one at a time; the image that runs, settings taken, one refused: not again
    slot["fetch"] = message
    store.save(store.SLOT_FILE, slot)
    uplink.board.emit("update_offered", sha256=sha)


def confirm(uplink):
    """A rating acknowledged on an image on trial: it stays."""
    slot = uplink.slot
    for key in ("trial", "boots"):
        slot.pop(key, None)
    slot["update"] = {"sha256": slot.get("sha256"), "result": "ok"}
    store.save(store.SLOT_FILE, slot)
    uplink.board.emit("update_confirmed", sha256=slot.get("sha256"))
    uplink.state_changed()


def watch_trial(terminal):
    """An image on trial that has not linked within TRIAL_LINK_MS gives up: the boot loader
    (slots.py) runs the one before it from the next boot on."""
    slot = terminal.uplink.slot
    if not terminal.linked and ms() >= TRIAL_LINK_MS:
        slot["give_up"] = "no link for %d minutes" % (TRIAL_LINK_MS // 60000)
        store.save(store.SLOT_FILE, slot)
        terminal.board.reset("update")


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
            uplink.next_tls = tls_context(ca)  # settings.offered() has built one once
        client.ssl = uplink.next_tls
    else:
        client.host, client.port, client.user, client.password = uplink.settings["broker_addr"]
        client.ssl = uplink.tls
    return offered


def refused(uplink, error, offered):
    """A link that failed while settings are on offer. The offered account failing in any
    way (refused, unreachable, a certificate it cannot check) gives way to the terminal's own
    at once, and is tried again RETRY_MS later; the terminal's own refused (a rotation the
    broker has taken) brings the offered one next, after the usual backoff. True for at once."""
    if offered:
        uplink.next_refused_at = ms()
        uplink.board.emit("login_refused", offered=True, reason=repr(error))
        return True
    code = error.args[1] if isinstance(error, MQTTError) and len(error.args) > 1 else None
    if code in REFUSED_LOGIN:
        uplink.next_refused_at = None
        uplink.board.emit("login_refused", offered=False, reason=repr(error))
    return False


def take(uplink):
    """The broker accepted the settings offered: merged into the terminal's settings file
    (replaced whole), and the state says so."""
    values = store.load("settings.json", {})
    values.update(store.load(store.NEXT_SETTINGS, {}))
    store.save("settings.json", values)
    os.remove(store.NEXT_SETTINGS)
    uplink.settings["broker_addr"], uplink.settings["tls_ca"] = uplink.next_broker
    uplink.tls, uplink.next_broker = uplink.next_tls, None
    sha = uplink.slot.pop("settings", None)
    uplink.slot["update"] = {"sha256": sha, "result": "ok"}
    store.save(store.SLOT_FILE, uplink.slot)
    uplink.board.emit("settings_taken", user=uplink.client.user)


def again(uplink, now):
    """Whether to end a link on the account the terminal has, to try the offered one again."""
    refused_at = getattr(uplink, "next_refused_at", None)
    return refused_at is not None and now - refused_at >= RETRY_MS
