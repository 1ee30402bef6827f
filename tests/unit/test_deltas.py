"""A reader that holds a namespace's previous release applies the release's delta from the index
instead of decoding the whole new part; any other reader decodes the part."""

import json

from hypothesis import given
from hypothesis import strategies as st

from hotconf.deltas import MAX_SHARE, apply_delta, delta_between
from hotconf.snapshot import NamespaceSnapshot, Snapshot

keys = st.text(min_size=1, max_size=8)
values = st.dictionaries(keys, st.text(max_size=30), max_size=40)


def part_size(values):
    return len(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode())


@given(values, values)
def test_a_delta_applied_to_its_base_gives_the_new_configurations_in_their_order(before, after):
    delta = delta_between(before, after, "d0", part_size(after))
    if delta is None:
        return
    assert delta["from"] == "d0"
    applied = apply_delta(before, json.loads(json.dumps(delta)))  # as it travels
    assert list(applied.items()) == list(after.items())
    assert len(delta["set"]) + len(delta["unset"]) <= len(after) * MAX_SHARE


@given(st.dictionaries(keys, st.text(max_size=30), min_size=8, max_size=40), st.data())
def test_a_small_release_always_has_a_delta_that_gives_it(before, data):
    """A change of one key, an added key or a removed one (the usual release): a delta exists,
    and the reader that applies it holds the release, keys in its order."""
    after = dict(before)
    edit = data.draw(st.sampled_from(["change", "add", "remove"]))
    key = data.draw(st.sampled_from(sorted(before)))
    if edit == "change":
        after[key] = before[key] + "!"
    elif edit == "add":
        after[data.draw(keys.filter(lambda k: k not in before))] = "new"
    else:
        del after[key]
    delta = delta_between(before, after, "d0", part_size(after) + 4096)
    assert delta is not None
    assert list(apply_delta(before, json.loads(json.dumps(delta))).items()) == list(after.items())


@given(st.lists(keys, min_size=4, max_size=40, unique=True), st.data())
def test_a_one_key_change_of_a_namespace_is_a_one_key_delta(names, data):
    before = {k: "v" * 20 for k in names}
    key = data.draw(st.sampled_from(names))
    after = {**before, key: "changed"}
    assert delta_between(before, after, "d0", part_size(after)) == \
        {"from": "d0", "set": {key: "changed"}, "unset": []}
    assert delta_between(before, dict(before), "d0", part_size(before)) is None  # no change


def test_no_delta_where_it_would_not_pay_or_would_reorder():
    one = {"content": "a: 1\n" * 100}  # a yaml namespace: one key, its whole content
    assert delta_between(one, {"content": "a: 2\n" * 100}, "d0", 500) is None
    big = {f"k{i}": "v" for i in range(8)}
    assert delta_between(big, {**big, "k0": "x" * 400}, "d0", 450) is None  # most of the bytes
    inserted = {"new": "v", **big}  # a key added in front: applying would append it
    assert delta_between(big, inserted, "d0", 1000) is None
    assert delta_between(big, {**big, "new": "v"}, "d0", 1000)["set"] == {"new": "v"}
    gone = {k: v for k, v in big.items() if k != "k3"}
    assert delta_between(big, gone, "d0", 1000) == {"from": "d0", "set": {}, "unset": ["k3"]}


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
    other = held.replace({"ns0": NamespaceSnapshot("ns0", BIG | {"k": "other"}, "rX")},
                         version=7)  # (another release: another version than the index's)
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


def test_an_index_carries_deltas_up_to_its_bound(monkeypatch):
    import hotconf.snapshot as snapshot_module

    names = [f"ns{i}" for i in range(10)]
    old = Snapshot("app", "default", {n: NamespaceSnapshot(n, BIG | {"k": "v0"}, "r0")
                                      for n in names}, 1)
    new = old.replace({n: NamespaceSnapshot(n, BIG | {"k": "v1"}, "r1") for n in names})
    assert json.loads(new.index_json())["namespaces"]["ns9"]["delta"]["set"] == {"k": "v1"}
    monkeypatch.setattr(snapshot_module, "MAX_INDEX_DELTAS", 400)
    carried = [n for n, e in json.loads(new.index_json())["namespaces"].items() if "delta" in e]
    assert 0 < len(carried) < 10
    held, _ = decoding(old, None)
    got, read = decoding(new, held)  # the others are read whole
    assert sorted(read) == sorted(set(names) - set(carried))
    assert all(got.namespaces[n]["k"] == "v1" for n in names)
