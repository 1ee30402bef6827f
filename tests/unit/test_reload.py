from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf.changes import Change, ChangeEvent, ChangeType
from hotconf.masking import MASK, is_secret, mask
from hotconf.reload.policy import Debounce, ReloadPolicy, describe


def event(ns, **changes):
    return ChangeEvent(ns, MappingProxyType({
        k: Change(old, new, ChangeType.MODIFIED) for k, (old, new) in changes.items()}))


def test_patterns_match_key_or_namespace_key():
    p = ReloadPolicy(("db.*", "redis.url", "cache.yaml:*"))
    assert p.matches("application", "db.url") and p.matches("db.yaml", "db.pool")
    assert p.matches("application", "redis.url") and not p.matches("application", "redis.port")
    assert p.matches("cache.yaml", "anything") and not p.matches("application", "anything")
    assert not p.matches("application", "timeout")


def test_only_matching_real_changes_trigger():
    p = ReloadPolicy(("db.*",))
    found = p.triggering([event("application", **{"db.url": ("a", "b"), "timeout": ("1", "2")}),
                          event("other", **{"db.pool": ("5", "5")})])
    assert found == {("application", "db.url"): ("a", "b")}


def test_settles_after_quiet_period_with_a_ceiling():
    d = Debounce(ReloadPolicy(("x",), wait_min=1, wait_max=5, min_interval=0), rand=lambda: 0)
    d.add(10.0, {("a", "x"): ("1", "2")})
    assert d.due_at() == 11.0
    d.add(10.8, {("a", "x"): ("2", "3")})
    assert d.due_at() == 11.8              # quiet period restarts
    for t in (11.5, 12.4, 13.3, 14.2):
        d.add(t, {("a", "x"): ("3", "4")})
    assert d.due_at() == 15.0              # never later than first + wait_max


def test_a_burst_gives_one_reload_and_the_last_value_wins():
    d = Debounce(ReloadPolicy(("x",), wait_min=1, wait_max=10), rand=lambda: 0)
    for i in range(100):
        d.add(i * 0.01, {("a", "x"): (str(i), str(i + 1))})
    assert d.fire(d.due_at()) == {("a", "x"): ("0", "100")}
    assert d.due_at() is None


def test_changed_back_within_the_window_is_no_reload():
    d = Debounce(ReloadPolicy(("x",)), rand=lambda: 0)
    d.add(0, {("a", "x"): ("1", "2")})
    d.add(0.5, {("a", "x"): ("2", "1")})
    assert d.fire(5) == {} and d.last_reload_at is None


def test_minimum_interval_and_splay():
    d = Debounce(ReloadPolicy(("x",), wait_min=1, wait_max=2, splay=4, min_interval=30),
                 rand=lambda: 0.5)
    d.add(0, {("a", "x"): ("1", "2")})
    assert d.due_at() == 1 + 2             # wait_min + half the splay
    d.fire(3)
    d.add(4, {("a", "x"): ("2", "3")})
    assert d.due_at() == 33                # not sooner than min_interval after the last one


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        ReloadPolicy(("x",), wait_min=5, wait_max=1)
    with pytest.raises(ValueError):
        ReloadPolicy(("x",), splay=-1)


@pytest.mark.parametrize("key", ["db.password", "DB_PASSWD", "api.secret", "auth.token",
                                 "aws.access_key", "api-key", "private.pem", "credentials"])
def test_secret_keys_are_masked(key):
    assert is_secret(key) and mask(key, "hunter2") == MASK


@pytest.mark.parametrize("key", ["db.url", "timeout", "keyboard.layout", "monkey"])
def test_ordinary_keys_are_not_masked(key):
    assert not is_secret(key) and mask(key, "v") == "v"


def test_passwords_inside_urls_are_masked_in_any_key():
    assert mask("db.url", "postgresql://app:s3cret@db-1:5432/app") == \
        "postgresql://app:****@db-1:5432/app"
    assert mask("db.url", "postgresql://db-1/app") == "postgresql://db-1/app"
    text = describe({("application", "db.url"): ("mysql://u:pw1@a/x", "mysql://u:pw2@b/x"),
                     ("application", "db.password"): ("pw1", "pw2")})
    assert "pw1" not in text and "pw2" not in text and "b/x" in text


@given(st.lists(st.tuples(st.floats(0, 100), st.text(max_size=3)), min_size=1, max_size=40))
def test_fire_reports_net_change_from_the_first_old_value(steps):
    d = Debounce(ReloadPolicy(("x",)), rand=lambda: 0)
    value = "start"
    for t, new in sorted(steps):
        d.add(t, {("a", "x"): (value, new)})
        value = new
    fired = d.fire(1000)
    assert fired == ({} if value == "start" else {("a", "x"): ("start", value)})


NAMESPACES = {"application": {"db.url": "u", "db.pool": "5", "cache.url": "c"},
              "infra": {"db.url": "i", "url": "x"}}


def test_select_picks_the_keys_the_patterns_name_in_every_scope():
    assert ReloadPolicy(("db.url",)).select(NAMESPACES) == {("application", "db.url"): "u",
                                                           ("infra", "db.url"): "i"}
    assert ReloadPolicy(("infra:url", "db.p*")).select(NAMESPACES) == {
        ("infra", "url"): "x", ("application", "db.pool"): "5"}
    assert ReloadPolicy(("*:db.*",)).select(NAMESPACES) == {
        ("application", "db.url"): "u", ("application", "db.pool"): "5",
        ("infra", "db.url"): "i"}
    assert ReloadPolicy(("nosuch", "other:db.url")).select(NAMESPACES) == {}


@given(st.dictionaries(st.sampled_from(["a.x", "a.y", "b.x", "b:y"]), st.text(max_size=3)),
       st.sampled_from(["a.*", "a.x", "*.x", "ns:a.*", "ns:b:y", "b:y", "?.y"]))
def test_select_agrees_with_matches(values, pattern):
    policy = ReloadPolicy((pattern,))
    assert policy.select({"ns": values}) == {("ns", k): v for k, v in values.items()
                                             if policy.matches("ns", k)}
