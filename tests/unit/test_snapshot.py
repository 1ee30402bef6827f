import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf.changes import ChangeType, apply_changes, diff_values
from hotconf.errors import ProtocolError
from hotconf.snapshot import NamespaceSnapshot, Snapshot, diff


def ns(name, values, key="r1"):
    return NamespaceSnapshot(name, values, key)


def test_snapshot_is_immutable():
    s = Snapshot("a", "default", {"application": ns("application", {"k": "v"})})
    with pytest.raises(AttributeError):
        s.version = 3
    with pytest.raises(TypeError):
        s.namespaces["x"] = None
    with pytest.raises(AttributeError):
        s.namespaces["application"].release_key = "x"


def test_diff_reports_added_modified_deleted_with_old_and_new():
    old = Snapshot("a", "default", {"application": ns("application", {"a": "1", "b": "2"})})
    new = old.replace({"application": ns("application", {"a": "9", "c": "3"}, "r2")})
    (event,) = diff(old, new)
    assert event.namespace == "application" and event.release_key == "r2"
    assert event.changes["a"] == ("1", "9", ChangeType.MODIFIED)
    assert event.changes["b"] == ("2", None, ChangeType.DELETED)
    assert event.changes["c"] == (None, "3", ChangeType.ADDED)


def test_first_load_and_unchanged_namespaces_give_no_events():
    a = Snapshot("a", "default", {"application": ns("application", {"a": "1"})})
    assert diff(None, a) == []
    assert diff(a, a.replace({})) == []
    assert diff(a, a.replace({"application": ns("application", {"a": "1"}, "r2")})) == []


def test_diff_of_yaml_namespace_is_per_nested_key():
    old = Snapshot("a", "default", {"db.yaml": ns("db.yaml", {"content": "db:\n  url: x\n"})})
    new = old.replace({"db.yaml": ns("db.yaml", {"content": "db:\n  url: y\n  pool: 3\n"}, "r2")})
    (event,) = diff(old, new)
    assert dict(event.changes) == {"db.url": ("x", "y", ChangeType.MODIFIED),
                                   "db.pool": (None, "3", ChangeType.ADDED)}


def test_event_filter_by_keys_and_prefixes():
    old = Snapshot("a", "default", {"application": ns("application", {})})
    new = old.replace({"application": ns("application", {"db.url": "1", "db.pool": "2", "x": "3"})})
    (event,) = diff(old, new)
    assert event.only(keys=["x"]).changed_keys == ["x"]
    assert sorted(event.only(prefixes=["db."]).changed_keys) == ["db.pool", "db.url"]
    assert event.only(keys=["nope"]) is None
    assert event.only() is event


def test_round_trip_through_dict():
    s = Snapshot("a", "c1", {"application": ns("application", {"k": "v"}),
                             "db.yaml": ns("db.yaml", {"content": "a: 1\n"}),
                             "gone": NamespaceSnapshot.missing("gone")}, version=7)
    back = Snapshot.from_dict(s.to_dict())
    assert back.version == 7 and back.source == "cache"
    assert dict(back.namespaces["db.yaml"]) == {"a": "1"}
    assert back.namespaces["gone"].found is False
    assert back.release_keys == s.release_keys


@pytest.mark.parametrize("doc", [None, [], {"format": "other"},
                                 {"format": "hotconf-snapshot/1", "app_id": "a"},
                                 {"format": "hotconf-snapshot/1", "app_id": "a", "cluster": "c",
                                  "version": 1, "created_at": 1.0,
                                  "namespaces": {"n": {"configurations": {"k": 1}}}}])
def test_from_dict_rejects_wrong_shapes(doc):
    with pytest.raises(ProtocolError):
        Snapshot.from_dict(doc)


def test_with_notification_id_keeps_everything_else():
    a = ns("db.yaml", {"content": "a: 1\n"})
    b = a.with_notification_id(42)
    assert b.notification_id == 42 and b.parsed is a.parsed and dict(b) == dict(a)


values = st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=20)


@given(values, values)
def test_applying_the_diff_to_old_gives_new(old, new):
    assert apply_changes(old, diff_values(old, new)) == new


@given(values, values)
def test_the_diff_names_exactly_the_keys_that_differ_with_both_values(old, new):
    changes = diff_values(old, new)
    assert set(changes) == {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)
                            or (k in old) != (k in new)}
    for key, (before, after, kind) in changes.items():
        assert (before, after) == (old.get(key), new.get(key))
        assert kind is (ChangeType.ADDED if key not in old else
                        ChangeType.DELETED if key not in new else ChangeType.MODIFIED)


@given(values)
def test_no_changes_against_itself(v):
    assert diff_values(v, dict(v)) == {}


def test_decoding_reuses_namespaces_whose_release_did_not_change():
    a = Snapshot("a", "default", {"db.yaml": ns("db.yaml", {"content": "a: 1\n"}, "r1"),
                                  "app": ns("app", {"k": "v"}, "r1")})
    b = a.replace({"app": ns("app", {"k": "w"}, "r2")})
    decoded = Snapshot.from_dict(b.to_dict(), previous=a)
    assert decoded.namespaces["db.yaml"] is a.namespaces["db.yaml"]  # not parsed again
    assert decoded.namespaces["app"] is not a.namespaces["app"]
    assert decoded.namespaces["app"]["k"] == "w"


def test_a_value_with_a_lone_surrogate_is_stored_and_read_back():
    """JSON may escape half a surrogate pair ("\\ud83d"): a part of it cannot be UTF-8 text."""
    ns = NamespaceSnapshot("application", {"k": "\ud83d", "other": "caf\u00e9"}, "r1")
    s = Snapshot("a", "default", {"application": ns}, 1)
    parts = s.parts()
    back = Snapshot.decode(s.index_json(), lambda name, digest: parts.get(digest))
    assert dict(back.namespaces["application"]) == {"k": "\ud83d", "other": "caf\u00e9"}
