import itertools

from hotconf.backoff import Backoff


def test_doubles_from_one_to_the_cap_without_jitter():
    b = Backoff(1, 120, rand=lambda: 0.0)
    delays = [b.next_delay() for _ in range(10)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_jitter_stretches_but_never_shortens_or_passes_the_cap():
    values = itertools.cycle([0.0, 0.5, 0.999])
    b = Backoff(1, 120, jitter=0.25, rand=lambda: next(values))
    nominal = 1
    for _ in range(12):
        d = b.next_delay()
        assert min(nominal, 120) <= d <= min(120, nominal * 1.25)
        nominal *= 2


def test_reset_starts_over():
    b = Backoff(1, 120, rand=lambda: 0.0)
    b.next_delay(), b.next_delay()
    b.reset()
    assert b.next_delay() == 1 and b.failures == 1
