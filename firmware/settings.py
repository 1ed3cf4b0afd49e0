# The per-device settings file written at deploy time: who the terminal is,
# where its network and broker are, and the first config (counter, staff,
# buttons...) until the retained config topic says otherwise.
import contract
import store

DEFAULTS = {
    "site": None,
    "device": None,
    "broker": "mqtt://127.0.0.1:1883",
    "topic_root": contract.ROOT,
    "keepalive_s": 30,
    "wifi_ssid": None,
    "wifi_password": None,
    "ntp_host": "pool.ntp.org",
    "clerk_key": True,
    "voice_module": False,
    "queue_bytes": 256 * 1024,
    "reconnect_max_s": 60,
}


class SettingsError(Exception):
    pass


def parse_broker_url(url):
    """mqtt://[user[:password]@]host[:port] -> (host, port, user, password)."""
    if not url.startswith("mqtt://"):
        raise SettingsError("broker URL must start with mqtt://")
    rest = url[7:].rstrip("/")
    user = password = None
    if "@" in rest:
        cred, rest = rest.rsplit("@", 1)
        user, _, password = cred.partition(":")
        password = password or None
    host, _, port = rest.partition(":")
    if not host:
        raise SettingsError("broker URL has no host")
    return host, int(port) if port else 1883, user, password


def load(path, default_device=None):
    """The settings, defaults filled in; the device id defaults to the board's."""
    values = dict(DEFAULTS)
    values.update(store.load(path, {}))
    if values["device"] is None:
        values["device"] = default_device
    for key in ("site", "device"):
        if not contract.valid_name(key, values[key]):
            raise SettingsError("%s %r breaks %s" % (key, values[key], contract.name_pattern(key)))
    values["broker_addr"] = parse_broker_url(values["broker"])
    return values
