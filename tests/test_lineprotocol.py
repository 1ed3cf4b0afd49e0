"""Line protocol: escaping rules, and the real InfluxDB reads back exactly what was meant."""

from __future__ import annotations

import pytest

from collector.influx import InfluxError, InfluxHttp
from collector.lineprotocol import line
from devstack.process import free_port


def test_fields_are_typed_and_tags_sorted():
    text = line("rating", {"b": "2", "a": "1"}, {"i": 3, "f": 1.5, "s": "x", "t": True}, 42)
    assert text == 'rating,a=1,b=2 i=3i,f=1.5,s="x",t=true 42'


def test_empty_and_missing_values_are_left_out():
    text = line("m", {"a": None, "b": "", "c": "x"}, {"f": None, "g": 1}, 7)
    assert text == "m,c=x g=1i 7"


def test_a_point_without_fields_is_an_error():
    with pytest.raises(ValueError):
        line("m", {"a": "x"}, {"f": None}, 1)


def test_names_and_strings_are_escaped():
    text = line("m e,x", {"k ,=": "v ,="}, {"f ,=": 'q"b\\s'}, 1)
    assert text == r'm\ e\,x,k\ \,\==v\ \,\= f\ \,\=="q\"b\\s" 1'


def test_influxdb_reads_back_awkward_values(influxdb, database):
    writer = InfluxHttp(influxdb.url, database)
    writer.ensure_database()
    awkward = 'quote " backslash \\ comma , equals = space'
    writer.write([line("m", {"tag": "a b,c=d"}, {"why": awkward, "n": -5}, 1_000_000_123)])
    rows = influxdb.query("SELECT * FROM m", database)
    assert rows == [{"time": 1_000_000_123, "tag": "a b,c=d", "why": awkward, "n": -5}]


def test_a_refused_line_is_a_permanent_error(influxdb, database):
    writer = InfluxHttp(influxdb.url, database)
    writer.ensure_database()
    writer.write([line("m", {}, {"n": 1}, 1)])
    with pytest.raises(InfluxError) as refused:
        writer.write([line("m", {}, {"n": "text"}, 2)])  # field type conflict
    assert refused.value.permanent


def test_an_unreachable_server_is_a_passing_error():
    writer = InfluxHttp(f"http://127.0.0.1:{free_port()}", "x")  # nobody listens there
    with pytest.raises(InfluxError) as failed:
        writer.write([line("m", {}, {"n": 1}, 1)])
    assert not failed.value.permanent
    assert not writer.ping()


def test_a_missing_database_is_an_outage_not_a_refusal(influxdb, database):
    """404: dropped or misnamed, the data itself is fine; it waits and the database is made."""
    writer = InfluxHttp(influxdb.url, database)
    for attempt in (
        lambda: writer.write([line("m", {}, {"n": 1}, 1)]),
        lambda: writer.query("SELECT * FROM m"),
    ):
        with pytest.raises(InfluxError) as missing:
            attempt()
        assert not missing.value.permanent and missing.value.missing_database
