import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf.apollo import responses
from hotconf.errors import ProtocolError


def test_parse_config_full():
    body = json.dumps({"appId": "a", "cluster": "default", "namespaceName": "application",
                       "configurations": {"k": "v"}, "releaseKey": "r1"}).encode()
    cfg = responses.parse_config(body)
    assert cfg.configurations == {"k": "v"} and cfg.release_key == "r1"


def test_parse_config_incremental_sync_applies_to_previous():
    body = json.dumps({"appId": "a", "cluster": "default", "namespaceName": "application",
                       "releaseKey": "r2", "configSyncType": "IncrementalSync",
                       "configurationChanges": [
                           {"key": "a", "newValue": "2", "configurationChangeType": "MODIFIED"},
                           {"key": "b", "configurationChangeType": "DELETED"},
                           {"key": "c", "newValue": "3", "configurationChangeType": "ADDED"}]}
                      ).encode()
    cfg = responses.parse_config(body, previous={"a": "1", "b": "x"})
    assert cfg.configurations == {"a": "2", "c": "3"}
    with pytest.raises(ProtocolError):
        responses.parse_config(body, previous=None)


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"appId": 1}', b'\xff\xfe',
    json.dumps({"appId": "a", "cluster": "c", "namespaceName": "n", "releaseKey": "r",
                "configurations": {"k": 1}}).encode(),
    json.dumps({"appId": "a", "cluster": "c", "namespaceName": "n", "releaseKey": "r",
                "configSyncType": "Weird"}).encode(),
])
def test_parse_config_rejects_bad_bodies(body):
    with pytest.raises(ProtocolError):
        responses.parse_config(body)


def test_parse_notifications():
    body = json.dumps([{"namespaceName": "application", "notificationId": 101,
                        "messages": {"details": {"a+default+application": 101}}},
                       {"namespaceName": "db.yaml", "notificationId": 7}]).encode()
    notes = responses.parse_notifications(body)
    assert notes[0].notification_id == 101 and notes[0].messages == {"a+default+application": 101}
    assert notes[1].messages == {}


@pytest.mark.parametrize("body", [b"{}", b'[{"namespaceName": "a"}]',
                                  b'[{"namespaceName": "a", "notificationId": true}]',
                                  b'[{"namespaceName": "a", "notificationId": 1, "messages": 3}]'])
def test_parse_notifications_rejects_wrong_shapes(body):
    with pytest.raises(ProtocolError):
        responses.parse_notifications(body)


def test_parse_services():
    body = json.dumps([{"appName": "APOLLO-CONFIGSERVICE", "instanceId": "x",
                        "homepageUrl": "http://10.0.0.1:8080/"}]).encode()
    assert responses.parse_services(body) == ["http://10.0.0.1:8080/"]
    assert responses.parse_services(b"[]") == []
    with pytest.raises(ProtocolError):
        responses.parse_services(b'[{"homepageUrl": "ftp://x"}]')


def test_error_summary_prefers_message_and_is_printable():
    assert responses.error_summary(b'{"status":401,"message":"RequestTimeTooSkewed"}') == \
        "RequestTimeTooSkewed"
    assert responses.error_summary(b"\x00\x01bad") .isprintable()


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_protocol_error(body):
    for parse in (responses.parse_config, responses.parse_notifications, responses.parse_services):
        try:
            parse(body)
        except ProtocolError:
            pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10))
def test_any_json_parses_or_raises_protocol_error(doc):
    body = json.dumps(doc).encode()
    for parse in (responses.parse_config, responses.parse_notifications, responses.parse_services):
        try:
            parse(body)
        except ProtocolError:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3), max_leaves=12)
layouts = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")},
                           {"ensure_ascii": False}, {"indent": "\t", "ensure_ascii": False}])


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5), layouts,
       st.sampled_from(["", " ", "\n\t "]))
def test_an_object_is_read_as_json_reads_it_with_where_each_member_is(doc, layout, pad):
    text = pad + json.dumps(doc, **layout) + pad
    members, spans = responses._object_with_spans(text)
    assert members == json.loads(text)
    for key, (start, end) in spans.items():
        assert json.loads(text[start:end]) == members[key]


@given(st.text(max_size=40) | json_values.map(json.dumps))
def test_anything_else_is_refused_as_json_refuses_it(text):
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    try:
        got = responses._object_with_spans(text)[0]
    except ValueError:
        got = None
    assert got == (expected if isinstance(expected, dict) else None)


@pytest.mark.parametrize("layout", [{}, {"indent": 1}, {"ensure_ascii": False}])
def test_the_configurations_are_kept_as_the_server_sent_them(layout):
    configurations = {"k": "v", "caf\u00e9": "\u00e9t\u00e9 \"quoted\"", "configurations": "x"}
    body = json.dumps({"appId": "a", "cluster": "default", "namespaceName": "application",
                       "configurations": configurations, "releaseKey": "r1"}, **layout).encode()
    cfg = responses.parse_config(body)
    assert cfg.configurations == configurations
    assert json.loads(cfg.configurations_json) == configurations
    assert cfg.configurations_json in body  # a slice of the answer: nothing encoded again


def test_an_incremental_answer_has_no_configurations_as_sent():
    body = json.dumps({"appId": "a", "cluster": "default", "namespaceName": "application",
                       "releaseKey": "r2", "configSyncType": "IncrementalSync",
                       "configurationChanges": []}).encode()
    assert responses.parse_config(body, previous={"a": "1"}).configurations_json is None


def test_an_answer_of_many_members_is_read_by_json_loads_with_nothing_kept_as_sent():
    answer = {"appId": "a", "cluster": "default", "namespaceName": "application",
              "configurations": {"k": "v"}, "releaseKey": "r1"}
    body = json.dumps({**answer, **{f"extra{i}": i for i in range(100)}}).encode()
    cfg = responses.parse_config(body)
    assert cfg.configurations == {"k": "v"} and cfg.configurations_json is None
    with pytest.raises(ValueError):
        responses._object_with_spans('{"a": 1' + ', "a": 1' * 100 + "}")  # repeated keys count
