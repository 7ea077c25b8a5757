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
        rows = store.metric_rows()
        fetches = CounterMetricFamily("feedhub_fetches", "Source fetches by outcome (and error kind).",
                                      labels=["outcome", "kind"])
        entries = CounterMetricFamily("feedhub_entries_ingested", "Entries stored, new or updated.",
                                      labels=["kind"])
        buckets: dict[str, float] = {}
        total_sum = 0.0
        for name, label_text, value in rows:
            labels = _labels(label_text)
            if name == "fetches":
                fetches.add_metric([labels.get("outcome", ""), labels.get("kind", "")], value)
            elif name == "entries":
                entries.add_metric([labels.get("kind", "")], value)
            elif name == "fetch_duration_bucket":
                buckets[labels["le"]] = value
            elif name == "fetch_duration_sum":
                total_sum = value
        yield fetches
        yield entries
        cumulative, running = [], 0.0
        for le in [*map(str, DURATION_BUCKETS), "+Inf"]:
            running += buckets.get(le, 0.0)
            cumulative.append((le, running))
        yield HistogramMetricFamily("feedhub_fetch_duration_seconds", "Wall-clock time of one source fetch.",
                                    buckets=cumulative, sum_value=total_sum)
        counts = store.status_counts()  # the same statuses as `feedhub sources` and /healthz
        failing = GaugeMetricFamily("feedhub_failing_sources",
                                    "Enabled sources whose last fetch failed (not those gone after a 410).")
        failing.add_metric([], counts["failing"])
        yield failing
        gone = GaugeMetricFamily("feedhub_gone_sources", "Sources stopped by HTTP 410 Gone.")
        gone.add_metric([], counts["gone"])
        yield gone
        by_status = GaugeMetricFamily("feedhub_sources", "Sources by health status.", labels=["status"])
        for status, count in counts.items():
            by_status.add_metric([status], count)
        yield by_status
        stored = GaugeMetricFamily("feedhub_entries", "Entries in the store.")
        stored.add_metric([], store.entry_count())
        yield stored


@metrics.route("/metrics")
def prometheus() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector())
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
