"""The alerts' figures on /metrics: read at scrape time from the outboxes' counters. Labels
are the target's kind ("telegram", "webhook"), never its URL or token."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.metrics import NAMESPACE

from .service import Alerts

_FIGURES = (
    (CounterMetricFamily, "sent", "sent", "Alert messages (and photos) a target took"),
    (
        CounterMetricFamily,
        "failed",
        "failed",
        "Alert messages given up: refused for good, or still failing after the last retry",
    ),
    (CounterMetricFamily, "retries", "retries", "Alert sends retried (429, 5xx, no answer)"),
    (
        CounterMetricFamily,
        "dropped",
        "dropped",
        "Alert lines dropped at the outbox's bound (alerts.queue_size) or left at shutdown",
    ),
    (GaugeMetricFamily, "queued", "queued", "Alert lines and messages waiting to be sent"),
)


class AlertsCollector(Collector):
    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    def collect(self) -> Iterable[Metric]:
        stats = self.alerts.stats()
        for kind, name, key, doc in _FIGURES:
            family = kind(f"{NAMESPACE}_alerts_{name}", doc, labels=["target"])
            for target, figures in sorted(stats.items()):
                family.add_metric([target], float(figures[key]))
            yield family
