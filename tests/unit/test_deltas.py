"""A reader that holds a namespace's previous release applies the release's delta from the index
instead of decoding the whole new part; any other reader decodes the part."""

import json

from hypothesis import given
from hypothesis import strategies as st

from hotconf.deltas import MAX_SHARE, apply_delta, delta_between
from hotconf.snapshot import NamespaceSnapshot, Snapshot

keys = st.text(min_size=1, max_size=8)
values = st.dictionaries(keys, st.text(max_size=30), max_size=40)


@given(values, values)
def test_a_delta_applied_to_its_base_gives_the_new_configurations(before, after):
    delta = delta_between(before, after, "d0")
    if delta is None:
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                   or (k in before) != (k in after)}
        assert not changed or len(changed) > max(1, int(len(after) * MAX_SHARE))
        return
    assert delta["from"] == "d0"
    assert apply_delta(before, json.loads(json.dumps(delta))) == after  # as it travels


@given(values, keys, st.text(max_size=30))
def test_a_one_key_change_is_a_one_key_delta(before, key, value):
    after = {**before, key: value}
    delta = delta_between(before, after, "d0")
    if before.get(key) == value:
        assert delta is None  # nothing changed
    else:
        assert delta == {"from": "d0", "set": {key: value}, "unset": []}


def test_a_malformed_delta_is_refused_not_applied():
    for bad in (None, [], {"set": {}}, {"set": {"a": 1}, "unset": []},
                {"set": {}, "unset": [1]}, {"set": [], "unset": []}):
        assert apply_delta({"a": "1"}, bad) is None


BIG = {f"key.{j:03d}": "y" * 96 for j in range(500)}


def snapshots():
    old = Snapshot("app", "default", {n: NamespaceSnapshot(n, BIG | {"k": "v0"}, "r0")
                                      for n in ("ns0", "ns1")}, 1)
    new = old.replace({"ns0": NamespaceSnapshot("ns0", BIG | {"k": "v1"}, "r1")})
    return old, new


def decoding(snapshot, previous):
    parts, read = snapshot.parts(), []

    def read_part(name, digest):
        read.append(name)
        return parts.get(digest)

    return Snapshot.decode(snapshot.index_json(), read_part, previous=previous), read


def test_a_reader_on_the_previous_release_applies_the_delta_and_reads_no_part():
    old, new = snapshots()
    held, _ = decoding(old, None)
    got, read = decoding(new, held)
    assert read == []  # no part read: the delta in the index was enough
    assert dict(got.namespaces["ns0"]) == dict(new.namespaces["ns0"])
    assert got.namespaces["ns0"].digest == new.namespaces["ns0"].digest
    assert got.namespaces["ns1"] is held.namespaces["ns1"]
    assert len(new.index_json()) < 2000  # the delta is one key, not the namespace


def test_a_reader_on_another_release_or_a_bad_delta_reads_the_part():
    old, new = snapshots()
    held, _ = decoding(old, None)
    other = held.replace({"ns0": NamespaceSnapshot("ns0", BIG | {"k": "other"}, "rX")})
    got, read = decoding(new, other)
    assert read == ["ns0"] and got.namespaces["ns0"]["k"] == "v1"

    index = json.loads(new.index_json())
    index["namespaces"]["ns0"]["delta"]["set"] = {"k": 7}  # changed by hand
    parts = new.parts()
    got = Snapshot.decode(json.dumps(index).encode(), lambda n, d: parts.get(d), previous=held)
    assert got.namespaces["ns0"]["k"] == "v1"


def test_no_delta_when_a_release_changes_much_of_a_namespace_or_the_store_has_no_room():
    old, _ = snapshots()
    rewritten = old.replace({"ns0": NamespaceSnapshot("ns0", {"only": "this"}, "r1")})
    assert b'"delta"' not in rewritten.index_json()
    _, new = snapshots()
    assert b'"delta"' in new.index_json() and b'"delta"' not in new.index_json(deltas=False)
