"""Host-wide metrics in the Prometheus text format, from the registry (``pip install
hotconf[metrics]``: prometheus_client writes the format).

Any process can render them, since they are read from the host's files, not from the process
that is scraped: ``hotconf metrics`` for node_exporter's textfile collector, or an endpoint of
the app (``metrics_text(cfg)``; Flask: ``HotConf(app, metrics_path="/metrics")``).

Counters (``hotconf_poll_errors_total``, ``hotconf_reloads_total``, the delivery histogram) sum
the records of the processes alive now: they restart from zero when the poller changes or a
worker is recycled, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .errors import HotconfError
from .options import Settings
from .registry import read_host
from .status import DELIVERY_BUCKETS, Delivery, HostStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _prometheus() -> Any:
    try:
        import prometheus_client  # noqa: F401
        import prometheus_client.core
    except ImportError:
        raise HotconfError("metrics need prometheus_client: pip install 'hotconf[metrics]'") \
            from None
    return prometheus_client


def families(status: HostStatus) -> List[Any]:
    """The metric families of one host view."""
    core = _prometheus().core
    out: List[Any] = []
    processes = core.GaugeMetricFamily("hotconf_processes", "Processes serving this "
                                       "configuration on the host, by role", labels=["role"])
    roles: Dict[str, int] = {"poller": 0, "reader": 0, "idle": 0}
    for row in status.rows:
        roles[row.record.role] = roles.get(row.record.role, 0) + 1
    for role, count in sorted(roles.items()):
        processes.add_metric([role], count)
    out.append(processes)
    out.append(core.GaugeMetricFamily(
        "hotconf_stale_processes", f"Processes serving an older release than the host's for "
        f"longer than {status.stale_after:g} s", value=len(status.stale)))
    info = core.GaugeMetricFamily("hotconf_release_info", "1 for each release served by at "
                                  "least one process", labels=["namespace", "release_key"])
    served = sorted({(name, key) for row in status.rows
                     for name, key in row.record.releases.items() if key is not None})
    for name, key in served:
        info.add_metric([name, key], 1)
    out.append(info)
    if status.head is not None:
        out.append(core.GaugeMetricFamily(
            "hotconf_snapshot_age_seconds", "Seconds since the poller published the host's "
            "newest snapshot", value=max(0.0, status.now - status.head.published_at)))
    poller = status.poller
    out.append(core.GaugeMetricFamily(
        "hotconf_poller_up", "1 if a process polls the config service for this host",
        value=1 if poller is not None else 0))
    out.append(core.GaugeMetricFamily(
        "hotconf_poller_failing", f"1 if the poller has been failing for longer than "
        f"{status.stale_after:g} s", value=1 if status.poller_failing else 0))
    errors = core.CounterMetricFamily("hotconf_poll_errors", "Failed polls and fetches of the "
                                      "current poller, by kind", labels=["kind"])
    for kind in ("transport", "http", "auth", "not_found", "protocol", "other"):
        errors.add_metric([kind], (poller.errors.get(kind, 0) if poller is not None else 0))
    out.append(errors)
    if poller is not None and poller.last_success is not None:
        out.append(core.GaugeMetricFamily(
            "hotconf_last_success_timestamp_seconds", "When the poller last heard from the "
            "config service (a held poll answered 304 counts)", value=poller.last_success))
    reloads = core.CounterMetricFamily("hotconf_reloads", "Server reloads fired by live "
                                       "processes, by reason", labels=["reason"])
    fired: Dict[str, int] = {"change": 0, "owed": 0}
    for row in status.rows:
        for reason, count in row.record.reloads.items():
            fired[reason] = fired.get(reason, 0) + count
    for reason, count in sorted(fired.items()):
        reloads.add_metric([reason], count)
    out.append(reloads)
    failing = core.GaugeMetricFamily(
        "hotconf_dependent_failing", f"Processes whose resource or bound model has failed to "
        f"build or validate the latest values for longer than {status.stale_after:g} s",
        labels=["kind", "name"])
    builds = core.CounterMetricFamily("hotconf_dependent_builds", "Resources built and models "
                                      "applied by live processes", labels=["kind", "name"])
    failures = core.CounterMetricFamily("hotconf_dependent_failures", "Failed resource builds "
                                        "and rejected model releases in live processes",
                                        labels=["kind", "name"])
    named: Dict[Tuple[str, str], List[int]] = {}
    for row in status.rows:
        for dep in row.record.dependents:
            counts = named.setdefault((dep.kind, dep.name), [0, 0, 0])
            counts[0] += dep in row.failing
            counts[1] += dep.builds
            counts[2] += dep.failures
    for labels, (failing_now, built, failed) in sorted(named.items()):
        failing.add_metric(list(labels), failing_now)
        builds.add_metric(list(labels), built)
        failures.add_metric(list(labels), failed)
    out.extend([failing, builds, failures])
    delivery = Delivery()
    for row in status.rows:
        delivery = delivery.merged(row.record.delivery)
    histogram = core.HistogramMetricFamily(
        "hotconf_delivery_seconds", "Release fetched by the poller -> applied in each process")
    histogram.add_metric([], _buckets(delivery), sum_value=delivery.total)
    out.append(histogram)
    return out


def _buckets(delivery: Delivery) -> List[Tuple[str, float]]:
    cumulative, buckets = 0, []  # type: Tuple[int, List[Tuple[str, float]]]
    for bound, count in zip(list(DELIVERY_BUCKETS) + [float("inf")], delivery.counts):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
    return buckets


class _Collector:
    def __init__(self, view: Callable[[], HostStatus]):
        self._view = view

    def collect(self) -> Iterator[Any]:
        yield from families(self._view())


def render(status: HostStatus) -> bytes:
    """The text exposition of one host view."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(lambda: status))
    text: bytes = prometheus.generate_latest(registry)
    return text


def metrics_text(config: Any, stale_after: Optional[float] = None) -> bytes:
    """The host's metrics for ``config`` (a ``Config``, or its ``Settings``); stale after the
    Config's ``stale_after`` unless given."""
    settings: Settings = getattr(config, "settings", config)
    return render(read_host(settings, stale_after))
