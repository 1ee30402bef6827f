import itertools

import pytest

from hotconf.runtime import (
    POLLER_CHOICES,
    ProcessFacts,
    celery_pool_restart_problem,
    claims_poller,
    competes_for_poller,
    parse_cache2,
    reload_keeps_import,
    stands_in_only,
    store_kind,
    threads_problem,
    will_fork,
)

UWSGI_MASTER = ProcessFacts(server="uwsgi", uwsgi_master=True)
UWSGI_WORKER = ProcessFacts(server="uwsgi")
UWSGI_MULE = ProcessFacts(server="uwsgi", uwsgi_mule=True)
GUNICORN_ARBITER = ProcessFacts(server="gunicorn", gunicorn_arbiter=True)
GUNICORN_WORKER = ProcessFacts(server="gunicorn")
CELERY_MAIN = ProcessFacts(server="celery", celery_main=True)  # prefork: forks its pool
CELERY_CHILD = ProcessFacts(server="celery", worker=1)
CELERY_SOLO = ProcessFacts(server="celery")  # solo, threads, gevent: runs the tasks itself
PLAIN = ProcessFacts()


def test_masters_that_fork_never_run_threads_or_poll():
    for facts in (UWSGI_MASTER, GUNICORN_ARBITER, CELERY_MAIN):
        assert will_fork(facts)
        for mode in POLLER_CHOICES:
            assert not competes_for_poller(facts, mode)


@pytest.mark.parametrize("facts", [UWSGI_WORKER, UWSGI_MULE, GUNICORN_WORKER, CELERY_CHILD,
                                   CELERY_SOLO, PLAIN])
def test_leaf_processes_compete_in_auto_mode(facts):
    assert not will_fork(facts)
    assert competes_for_poller(facts, "auto")
    assert not competes_for_poller(facts, "never")


def test_workers_stand_in_for_the_hotconf_mule_which_alone_claims_the_role():
    # workers compete in mule mode too, as stand-ins while the mule is down...
    assert competes_for_poller(UWSGI_WORKER, "mule")
    assert not claims_poller(UWSGI_WORKER, run_mule=True)  # (run_mule outside a mule)
    # ...and hand the role to a mule running run_mule; an app's own task mule claims nothing
    assert claims_poller(UWSGI_MULE, run_mule=True)
    assert not claims_poller(UWSGI_MULE, run_mule=False)
    # outside uWSGI there is no mule: nobody claims
    assert not claims_poller(GUNICORN_WORKER, run_mule=True)


def test_in_mule_mode_workers_leave_the_start_to_the_mule():
    assert stands_in_only(UWSGI_WORKER, "mule")
    assert not stands_in_only(UWSGI_WORKER, "auto")
    assert not stands_in_only(UWSGI_MULE, "mule")
    assert not stands_in_only(GUNICORN_WORKER, "mule")  # no mule outside uWSGI


def test_exactly_the_expected_pollers_over_every_combination():
    kinds = [UWSGI_MASTER, UWSGI_WORKER, UWSGI_MULE, GUNICORN_ARBITER, GUNICORN_WORKER,
             CELERY_MAIN, CELERY_CHILD, CELERY_SOLO, PLAIN]
    for facts, mode, run_mule in itertools.product(kinds, POLLER_CHOICES, (False, True)):
        expected = not will_fork(facts) and mode != "never"
        assert competes_for_poller(facts, mode) is expected, (facts, mode)
        preferred = run_mule and facts.server == "uwsgi" and facts.uwsgi_mule
        assert claims_poller(facts, run_mule) is preferred, (facts, run_mule)


def test_store_choice():
    cache = ("hotconf", 65536, False)
    assert store_kind(ProcessFacts(server="uwsgi", uwsgi_cache=cache), "auto") == "uwsgi"
    assert store_kind(UWSGI_WORKER, "auto") == "file"      # no cache2 declared
    assert store_kind(GUNICORN_WORKER, "auto") == "file"
    assert store_kind(PLAIN, "memory") == "memory"


def test_threads_off_in_old_uwsgi_says_exactly_what_to_add():
    facts = ProcessFacts(server="uwsgi", uwsgi_threads=False,
                         uwsgi_version="2.0.21")
    message = threads_problem(facts)
    assert "enable-threads = true" in message and "2.0.21" in message
    assert "[uwsgi]" in message and "stale" in message
    assert threads_problem(ProcessFacts(server="uwsgi")) is None
    assert threads_problem(ProcessFacts(uwsgi_threads=False)) is None  # not uWSGI
    # the master starts no thread anyway: the workers report it
    assert threads_problem(ProcessFacts(server="uwsgi", uwsgi_master=True,
                                        uwsgi_threads=False)) is None


@pytest.mark.parametrize("value,expected", [
    (b"name=hotconf,items=16,blocksize=1048576", ("hotconf", 1048576, False)),
    ([b"name=other,items=1", b"name=hotconf,items=2"], ("hotconf", 65536, False)),
    (b"name=hotconf,items=100,blocksize=4096,bitmap=1", ("hotconf", 4096, True)),
    (b"name=other,items=10", None),
    (None, None),
])
def test_parse_cache2_option(value, expected):
    assert parse_cache2(value) == expected


def test_a_uwsgi_worker_without_threads_never_competes():
    """It would hold the poller lock and never poll; the mule (whose threads run) still may."""
    no_threads = ProcessFacts(server="uwsgi", uwsgi_threads=False)
    for mode in ("auto", "mule"):
        assert not competes_for_poller(no_threads, mode)
        assert competes_for_poller(ProcessFacts(server="uwsgi", uwsgi_mule=True,
                                                uwsgi_threads=False), mode)


def test_a_reload_that_re_forks_from_this_process_keeps_what_it_imported():
    """gunicorn --preload's arbiter and a Celery prefork main process hand their own import to
    the workers they fork again: a value read there changes only with a restart."""
    assert reload_keeps_import(GUNICORN_ARBITER) and reload_keeps_import(CELERY_MAIN)
    for facts in (UWSGI_MASTER, UWSGI_WORKER, GUNICORN_WORKER, CELERY_CHILD, CELERY_SOLO, PLAIN):
        assert not reload_keeps_import(facts), facts


def test_a_celery_pool_restart_needs_prefork_pool_restarts_and_remote_control():
    assert celery_pool_restart_problem("prefork", True, True) is None
    for pool, restarts, remote in itertools.product(
            ("prefork", "solo", "threads", "gevent", "eventlet"), (False, True), (False, True)):
        problem = celery_pool_restart_problem(pool, restarts, remote)
        assert (problem is None) is (pool == "prefork" and restarts and remote), problem
    # each says what is missing, in the setting's own name
    assert "solo pool" in celery_pool_restart_problem("solo", True, True)
    assert "worker_pool_restarts = True" in celery_pool_restart_problem("prefork", False, True)
    assert "remote control is off" in celery_pool_restart_problem("prefork", True, False)
