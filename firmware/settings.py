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
    return host, int(port) if port else contract.BROKER_PORTS[scheme], user, password


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
    return binascii.a2b_base64("".join(body))


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
    values = dict(DEFAULTS)
    values.update(store.load(path, {}))
    if values["device"] is None:
        values["device"] = default_device
    for key in ("site", "device"):
        if not contract.valid_name(key, values[key]):
            raise SettingsError("%s %r breaks %s" % (key, values[key], contract.name_pattern(key)))
    resolve_broker(values)
    return values
