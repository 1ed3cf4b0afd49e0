# The per-device settings file written at deploy time: who the terminal is,
# where its network and broker are, and the first config (counter, staff,
# buttons...) until the retained config topic says otherwise. svc-broker
# add-device writes the broker's part: URL, credentials and CA.
import binascii

import contract
import store

DEFAULTS = {
    "site": None,
    "device": None,
    "broker": "mqtt://127.0.0.1:1883",
    "broker_user": None,  # over the URL's: a device's name site/device has a / in it
    "broker_password": None,
    "broker_ca": None,  # PEM of the CA the broker's certificate must be signed by (mqtts)
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
# What each other setting must be; site and device follow their name rules, broker is a URL.
TEXT = ("topic_root", "ntp_host")
TEXT_OR_NULL = ("broker_user", "broker_password", "broker_ca", "wifi_ssid", "wifi_password")
FLAGS = ("clerk_key", "voice_module")
NUMBERS = {  # a whole number from, to
    "keepalive_s": (1, 65535),  # MQTT's two bytes
    "queue_bytes": (1, 16 * 1024 * 1024),  # the flash of the largest ESP32 module
    "reconnect_max_s": (1, 3600),
}
PORTS = (1, 65535)
# The keys `svc-broker add-device` writes (broker/credentials.py), which `svc-firmware deploy`
# asks for: the terminal's names and its broker account. Here for the tools; the terminal
# drops this module once the settings are read, so they cost its heap nothing.
ACCOUNT_KEYS = ("site", "device", "broker", "broker_user", "broker_password", "broker_ca")
OFFERED = ACCOUNT_KEYS[2:]  # what settings offered over the air change: never the names


class SettingsError(Exception):
    pass


def parse_broker_url(url, user=None, password=None):
    """mqtt[s]://[user[:password]@]host[:port] -> (host, port, user, password); a user given
    here is taken over the URL's, with this password."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in contract.BROKER_PORTS:
        raise SettingsError("broker URL must start with mqtts:// or mqtt://")
    rest = rest.rstrip("/")
    if "@" in rest:
        cred, rest = rest.rsplit("@", 1)
        if user is None:
            user, _, password = cred.partition(":")
            password = password or None
    host, _, port = rest.partition(":")
    if not host:
        raise SettingsError("broker URL has no host")
    number = contract.BROKER_PORTS[scheme]
    if port:
        try:
            number = int(port)
        except ValueError:
            number = 0  # not shown: a URL's malformed account could be read as its port
    return host, whole_number("broker URL's port", number, PORTS), user, password


def whole_number(name, value, limits):
    """value, when it is a whole number within limits (from, to); a bool is none."""
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError("%s must be a whole number from %d to %d" % (name, low, high))
    return value


def pem_to_der(pem):
    """The first certificate of a PEM text, as DER: MicroPython's TLS takes a CA only so."""
    body = []
    inside = False
    for line in pem.split("\n"):
        line = line.strip()
        if line.startswith("-----BEGIN"):
            inside = True
        elif line.startswith("-----END"):
            break
        elif inside:
            body.append(line)
    if not body:
        raise SettingsError("broker_ca holds no PEM certificate")
    try:
        return binascii.a2b_base64("".join(body))
    except ValueError:  # CPython's binascii.Error is one
        raise SettingsError("broker_ca's certificate is not base64")


def resolve_broker(values):
    """From the broker's settings, broker_addr (host, port, user, password) and tls_ca (the
    CA as DER when the broker is reached over TLS, else None); broker_ca's PEM goes."""
    url = values["broker"]
    if not isinstance(url, str):
        raise SettingsError("broker must be a URL, mqtts://host:port")
    user, password = values.get("broker_user"), values.get("broker_password")
    values["broker_addr"] = parse_broker_url(url, user, password)
    ca = values.pop("broker_ca", None)
    values["tls_ca"] = None
    if url.startswith("mqtts:"):
        if not ca:
            raise SettingsError("an mqtts:// broker needs broker_ca, the CA to check it by")
        values["tls_ca"] = pem_to_der(ca)


def load(path, default_device=None):
    """The settings, defaults filled in; the device id defaults to the board's."""
    saved = store.load(path, {})
    if not isinstance(saved, dict):
        raise SettingsError("%s must be a JSON object" % path)
    values = dict(DEFAULTS)
    values.update(saved)
    if values["device"] is None:
        values["device"] = default_device
    for key in ("site", "device"):
        if not contract.valid_name(key, values[key]):
            raise SettingsError("%s %r breaks %s" % (key, values[key], contract.name_pattern(key)))
    check(values)
    resolve_broker(values)
    return values


def offered(path, current="settings.json"):
    """The broker's settings offered over the air (the keys in `path`, over the terminal's
    settings file `current`, read only when some are offered), checked as at boot:
    (broker_addr, tls_ca), or a SettingsError. tls_ca's certificate is read here too, so a
    CA a terminal cannot use is refused before it is ever tried."""
    keys = store.load(path, None)
    if not isinstance(keys, dict) or not keys:
        raise SettingsError("%s holds no settings" % path)
    for key in keys:
        if key not in OFFERED:
            raise SettingsError("%s is not a setting an offer changes" % key)
    values = dict(DEFAULTS)
    values.update(store.load(current, {}))
    values.update(keys)
    check(values)
    resolve_broker(values)
    if values["tls_ca"]:
        from mqtt import tls_context

        try:
            tls_context(values["tls_ca"])
        except (ValueError, OSError) as e:
            raise SettingsError("broker_ca is not a certificate: %s" % e)
    return values["broker_addr"], values["tls_ca"]


def check(values):
    """Each setting of TEXT, TEXT_OR_NULL, FLAGS and NUMBERS of the right type and range, or a
    SettingsError naming the first that is not: the terminal would fail on it later (a Wi-Fi
    name that is a list, a keepalive that is text...), far from its cause. No value is shown:
    some are secrets."""
    for key in TEXT + TEXT_OR_NULL:
        if not isinstance(values[key], str) and (key in TEXT or values[key] is not None):
            raise SettingsError("%s must be text%s" % (key, "" if key in TEXT else " or null"))
    for key in FLAGS:
        if not isinstance(values[key], bool):
            raise SettingsError("%s must be true or false" % key)
    for key in NUMBERS:
        whole_number(key, values[key], NUMBERS[key])
