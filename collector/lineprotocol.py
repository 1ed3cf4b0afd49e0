"""InfluxDB line protocol, written by hand because it is five escaping rules.

The alternative, influxdb-client's Point, brings a large client whose batching
writer must not be used here anyway (it loses its buffer on a crash).
"""

from __future__ import annotations

from collections.abc import Mapping

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n"})

FieldValue = int | float | str | bool


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.translate(_STRING) + '"'


def line(
    measurement: str,
    tags: Mapping[str, str | None],
    fields: Mapping[str, FieldValue | None],
    time_ns: int,
) -> str:
    """One point; tags and fields whose value is None or "" are left out."""
    parts = [measurement.translate(_MEASUREMENT)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{key.translate(_KEY)}={value.translate(_KEY)}")
    field_text = ",".join(
        f"{key.translate(_KEY)}={_field(value)}"
        for key, value in fields.items()
        if value is not None
    )
    if not field_text:
        raise ValueError("a point needs at least one field")
    return f"{','.join(parts)} {field_text} {time_ns}"
