"""/metrics for Prometheus, read from the store so it counts the work of every collector process."""
from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from aggregator import store
from aggregator.collect import DURATION_BUCKETS

metrics = Blueprint("metrics", __name__)


def _labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


class StoreCollector:
    """Turns the shared counters and the sources' health into Prometheus metric families."""

    def collect(self) -> Iterator[Metric]:
        rows = list(store.Metric.select())
        fetches = CounterMetricFamily("feedhub_fetches", "Source fetches by outcome (and error kind).",
                                      labels=["outcome", "kind"])
        entries = CounterMetricFamily("feedhub_entries_ingested", "Entries stored, new or updated.",
                                      labels=["kind"])
        buckets: dict[str, float] = {}
        total_sum = 0.0
        for r in rows:
            labels = _labels(r.labels)
            if r.name == "fetches":
                fetches.add_metric([labels.get("outcome", ""), labels.get("kind", "")], r.value)
            elif r.name == "entries":
                entries.add_metric([labels.get("kind", "")], r.value)
            elif r.name == "fetch_duration_bucket":
                buckets[labels["le"]] = r.value
            elif r.name == "fetch_duration_sum":
                total_sum = r.value
        yield fetches
        yield entries
        cumulative, running = [], 0.0
        for le in [*map(str, DURATION_BUCKETS), "+Inf"]:
            running += buckets.get(le, 0.0)
            cumulative.append((le, running))
        yield HistogramMetricFamily("feedhub_fetch_duration_seconds", "Wall-clock time of one source fetch.",
                                    buckets=cumulative, sum_value=total_sum)
        S = store.Source
        enabled = S.select().where(S.enabled == True)  # noqa: E712
        failing = GaugeMetricFamily("feedhub_failing_sources",
                                    "Enabled sources whose last fetch failed.")
        failing.add_metric([], enabled.where(S.consecutive_failures > 0).count())
        yield failing
        gone = GaugeMetricFamily("feedhub_gone_sources", "Sources stopped by HTTP 410 Gone.")
        gone.add_metric([], enabled.where(S.disabled_reason.is_null(False)).count())
        yield gone
        stored = GaugeMetricFamily("feedhub_entries", "Entries in the store.")
        stored.add_metric([], store.Entry.select().count())
        yield stored


@metrics.route("/metrics")
def prometheus() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector())
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
