"""The host view (pure): who is current, who is stale and since when, the exit status; and the
records' round trip through their JSON form, which other processes read."""

import json
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from hotconf.status import (
    DELIVERY_BUCKETS,
    EXIT_CURRENT,
    EXIT_NOTHING,
    EXIT_UNHEALTHY,
    Delivery,
    DependentState,
    HostHead,
    PollerHealth,
    ProcessRecord,
    host_status,
)

NOW = 1_000_000.0
HEAD = HostHead(version=30, published_at=NOW - 20, releases={"application": "k3"})
POLLER = PollerHealth(pid=1, last_success=NOW - 1,
                      history=((10, NOW - 100), (20, NOW - 50), (30, NOW - 20)))


def record(pid, version, key, role="reader", armed_at=NOW - 1000):
    return ProcessRecord(pid=pid, role=role, version=version, releases={"application": key},
                         armed_at=armed_at)


def test_a_process_on_the_newest_release_is_current():
    view = host_status([record(1, 30, "k3", "poller"), record(2, 30, "k3")], POLLER, HEAD, NOW)
    assert [r.current for r in view.rows] == [True, True]
    assert view.exit_status == EXIT_CURRENT and view.problems == []


def test_staleness_counts_from_the_first_release_the_process_missed():
    # v10 missed v20 (published 50 s ago) and v30: behind for 50 s, not 20
    view = host_status([record(1, 30, "k3", "poller"), record(2, 10, "k1")], POLLER, HEAD, NOW)
    row = view.rows[1]
    assert not row.current and round(row.behind_for) == 50 and row.stale
    assert view.exit_status == EXIT_UNHEALTHY
    assert "process 2" in view.problems[0]


def test_a_worker_that_just_missed_one_swap_is_not_stale():
    head = HostHead(version=40, published_at=NOW - 1, releases={"application": "k4"})
    poller = PollerHealth(pid=1, last_success=NOW, history=((30, NOW - 20), (40, NOW - 1)))
    view = host_status([record(2, 30, "k3")], poller, head, NOW, stale_after=10)
    assert not view.rows[0].current and not view.rows[0].stale
    assert view.exit_status == EXIT_CURRENT


def test_an_older_version_with_the_same_releases_is_not_behind():
    view = host_status([record(2, 20, "k3")], POLLER, HEAD, NOW)
    assert view.rows[0].current


def test_a_process_is_never_behind_from_before_it_armed():
    view = host_status([record(2, None, None, armed_at=NOW - 4)], POLLER, HEAD, NOW)
    assert round(view.rows[0].behind_for) == 4 and not view.rows[0].stale
    view = host_status([record(2, None, None, armed_at=NOW - 40)], POLLER, HEAD, NOW)
    assert view.rows[0].stale  # a worker that never applied anything (no threads) shows


def test_the_poller_failing_past_the_bound_fails_the_probe():
    failing = PollerHealth(pid=1, failing_since=NOW - 5, error="refused")
    assert host_status([record(1, 30, "k3", "poller")], failing, HEAD, NOW).exit_status == 0
    failing = PollerHealth(pid=1, failing_since=NOW - 15, error="refused")
    view = host_status([record(1, 30, "k3", "poller")], failing, HEAD, NOW)
    assert view.poller_failing and view.exit_status == EXIT_UNHEALTHY
    assert "refused" in view.problems[0]


def test_no_poller_while_processes_run_is_unhealthy_and_nothing_at_all_is_exit_1():
    assert host_status([record(2, 30, "k3")], None, HEAD, NOW).exit_status == EXIT_UNHEALTHY
    assert host_status([], None, None, NOW).exit_status == EXIT_NOTHING


def test_rows_come_poller_first_then_mules_then_workers_in_order():
    records = [ProcessRecord(pid=9, role="reader", worker=2),
               ProcessRecord(pid=8, role="reader", worker=1),
               ProcessRecord(pid=7, role="poller", mule=1)]
    assert [r.record.pid for r in host_status(records, POLLER, HEAD, NOW).rows] == [7, 8, 9]


@given(st.lists(st.floats(min_value=0, max_value=120, allow_nan=False), max_size=40))
def test_the_delivery_histogram_counts_every_delivery_once(delays):
    delivery = Delivery()
    for delay in delays:
        delivery = delivery.add(delay)
    assert delivery.count == len(delays)
    assert abs(delivery.total - sum(delays)) < 1e-6 * max(1, len(delays))
    assert delivery.counts[-1] == sum(1 for d in delays if d > DELIVERY_BUCKETS[-1])
    assert Delivery.from_dict(json.loads(json.dumps(delivery.to_dict()))) == \
        Delivery(delivery.counts, round(delivery.total, 6))


def test_records_round_trip_and_bad_ones_are_skipped():
    rec = ProcessRecord(pid=5, role="reader", server="uwsgi", worker=3, version=7,
                        releases={"application": "k", "db.yaml": None}, applied_at=NOW,
                        reloads={"change": 1}, delivery=Delivery().add(0.01))
    assert ProcessRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    health = POLLER.failed("transport", "refused", NOW, 2.0).published(31, NOW)
    back = PollerHealth.from_dict(json.loads(json.dumps(health.to_dict())))
    assert back == health and back.errors == {"transport": 1} and back.history[-1] == (31, NOW)
    for junk in (None, [], {"format": "other"}, {"format": "hotconf-process/1", "pid": "x"},
                 {"format": "hotconf-process/1", "pid": -1, "role": "reader"}):
        assert ProcessRecord.from_dict(junk) is None
    assert PollerHealth.from_dict({"format": "hotconf-poller/1"}) is None


def test_a_success_clears_the_failure_and_history_stays_bounded():
    health = POLLER.failed("http", "500", NOW, 1.0).failed("http", "500", NOW + 1, 2.0)
    assert health.failing_since == NOW and health.errors == {"http": 2}
    health = health.succeeded(NOW + 2)
    assert health.failing_since is None and health.error is None and health.errors == {"http": 2}
    for version in range(100, 200):
        health = health.published(version, NOW)
    assert len(health.history) == 32 and health.history[-1][0] == 199


def test_a_poller_silent_past_a_poll_timeout_fails_the_probe():
    """Frozen (SIGSTOP) or hung: no error, but no success either for longer than a held poll
    can last plus the bound."""
    quiet = PollerHealth(pid=1, since=NOW - 1000, last_success=NOW - 95, poll_timeout=90)
    view = host_status([record(1, 30, "k3", "poller")], quiet, HEAD, NOW, stale_after=10)
    assert not view.poller_silent and view.exit_status == EXIT_CURRENT
    quiet = PollerHealth(pid=1, since=NOW - 1000, last_success=NOW - 101, poll_timeout=90)
    view = host_status([record(1, 30, "k3", "poller")], quiet, HEAD, NOW, stale_after=10)
    assert view.poller_silent and view.exit_status == EXIT_UNHEALTHY
    assert "has not heard from the config service" in view.problems[0]


def test_a_fetch_that_keeps_failing_is_not_reset_by_the_polls_between():
    health = PollerHealth(pid=1, since=NOW - 100).failed("http", "500", NOW - 60, 1.0)
    # polls answer (last_poll moves) but nothing announced could be fetched: still failing
    view = host_status([record(1, 30, "k3", "poller")], health, HEAD, NOW)
    assert view.poller_failing and "failing for 60 s" in view.problems[0]


def test_processes_with_a_store_of_their_own_need_no_host_poller():
    alone = ProcessRecord(pid=2, role="poller", shared=False, version=30,
                          releases={"application": "k3"})
    view = host_status([alone], None, HEAD, NOW)
    assert not view.needs_poller and view.exit_status == EXIT_CURRENT
    assert host_status([alone, record(3, 30, "k3")], None, HEAD, NOW).exit_status == \
        EXIT_UNHEALTHY


def test_a_failing_resource_or_model_fails_the_probe_only_past_the_bound():
    failing = DependentState("resource", "db", ("db.*",), builds=1, failures=1, built_at=NOW - 60,
                             error="ValueError: bad", failed_keys=("application:db.url",),
                             failing_since=NOW - 5)
    rec = replace(record(2, 30, "k3"), dependents=(failing,))
    view = host_status([record(1, 30, "k3", "poller"), rec], POLLER, HEAD, NOW)
    assert view.exit_status == EXIT_CURRENT and view.rows[1].failing == ()  # 5 s < 10 s
    view = host_status([record(1, 30, "k3", "poller"), rec], POLLER, HEAD, NOW + 6)
    assert view.exit_status == EXIT_UNHEALTHY and view.rows[1].failing == (failing,)
    assert view.problems == ["process 2: resource 'db' (application:db.url) has been failing for "
                             "11 s; it keeps its last good object: ValueError: bad"]
    healthy = replace(failing, error=None, failing_since=None, failed_keys=())
    view = host_status([record(1, 30, "k3", "poller"), replace(rec, dependents=(healthy,))],
                       POLLER, HEAD, NOW + 60)
    assert view.exit_status == EXIT_CURRENT
    back = ProcessRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec
    assert DependentState.from_dict({"kind": "model"}) is None
