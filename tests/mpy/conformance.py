# Run under the MicroPython Unix port with the firmware on the path:
#   micropython conformance.py TABLE.json
# Puts every row of the conformance table (tests/test_contract.py) through the
# firmware's own side as the terminal runs it: names, config fields, a
# prompt's ticket and the aspect mode through the rating flow, the flash record and the wire
# encoding. Prints one JSON line of what it found, for the test to hold
# against CPython's run of the same code and against the collector.
import json
import sys

import contract
import outbox
import protocol
from config import DEFAULTS, ConfigError, changes
from flow import RatingFlow


def config_takes(key, value):
    try:
        changes({key: value})
        return True
    except ConfigError:
        return False


def rating_message(counter, staff, ticket, aspects):
    """A prompt with this ticket, two presses (the second rates efficiency in the aspect mode,
    and is a repeat otherwise), through the flow, flash record and encoding."""
    config = dict(DEFAULTS)
    config["aspects"] = aspects
    flow = RatingFlow(config, 0)
    flow.prompt(0, contract.clean_ticket(ticket))
    events = flow.press(1, 1830) + flow.press(3, 2500)
    record = [e[1] for e in events if e[0] == "rating"][0]
    record.update(seq=1042, boot=17, ts=1795347568123, counter=counter, staff=staff)
    fields = outbox.decode(outbox.encode(record))
    fields.pop("at")
    return protocol.encode(contract.rating(**fields)).decode()


def main(path):
    with open(path) as f:
        table = json.load(f)
    found = {
        "names": [contract.valid_name(kind, value) for kind, value, _ in table["names"]],
        "config": [config_takes(key, value) for key, value, _ in table["config"]],
        "tickets": [contract.clean_ticket(value) for value, _ in table["tickets"]],
        "aspects": [contract.valid_aspects(value) for value, _ in table["aspects"]],
        "messages": [rating_message(*row) for row in table["ratings"]],
    }
    print(json.dumps(found))


main(sys.argv[1])
