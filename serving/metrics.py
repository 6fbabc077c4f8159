"""Prometheus metrics of one ModelServer: TensorFlow Serving's families plus tfstack's.

TensorFlow Serving's own metrics keep their names as its Prometheus exporter
writes them (`/tensorflow/serving/request_count` -> `:tensorflow:serving:request_count`,
util/prometheus_exporter.cc), with the same labels, units (microseconds) and
buckets, so dashboards built for it keep working. They are rendered the way
that exporter renders them (no `_total` suffix on counters, no `_created`
samples), which prometheus_client's exposition cannot do; tfstack's extras,
prefixed `tfstack_`, use prometheus_client's exposition as is.

Labels: `entrypoint` is GRPC or REST; `API`/`api` the gRPC method name for
both ("Predict", "Classify", "GetModelStatus", ...); a failed request's
`version` is the one it named ("" for latest or a label), a successful one's
the version that answered.

Each ServingMetrics owns its registries: several servers in one process
(tests) never share a counter.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from serving.manager import State, VersionStatus
from serving.servable import ServableId

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Entry points, as TF Serving labels request_latency.
GRPC = "GRPC"
REST = "REST"

# Model life-cycle events counted by model_event().
LOAD, UNLOAD, LOAD_FAILED = "load", "unload", "load_failed"


def exponential_buckets(scale: float, growth: float, count: int) -> list[float]:
    """tensorflow::monitoring::Buckets::Exponential (the +Inf bucket is implicit)."""
    return [scale * growth**i for i in range(count)]


# util.cc: "Scale of 10, power of 1.8 with bucket count 33 (~20 minutes)", in microseconds.
LATENCY_BUCKETS_US = exponential_buckets(10, 1.8, 33)
# util.cc: [1, 2, 4, ..., 16 * 1024], then +Inf.
EXAMPLE_COUNT_BUCKETS = exponential_buckets(1, 2, 15)
TFSTACK_LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 13)  # 1 .. 4096

# The APIs TF Serving counts in request_count and request_latency (prediction_service_impl.cc).
TF_COUNTED_APIS = frozenset({"Predict", "Classify", "Regress"})
# TF Serving counters whose own name ends in "_total" (prometheus_client drops it).
TF_TOTAL_COUNTERS = frozenset({":tensorflow:serving:request_example_count_total"})


class ServingMetrics:
    """Everything a server counts; thread-safe, cheap enough for every request."""

    def __init__(self) -> None:
        self.tf_registry = CollectorRegistry(auto_describe=False)
        self.registry = CollectorRegistry(auto_describe=False)
        tf, ours = self.tf_registry, self.registry
        # -- TensorFlow Serving's (servables/tensorflow/util.cc) --------------------------
        self._request_count = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=tf,
        )
        self._request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=tf,
        )
        self._example_counts = Histogram(
            ":tensorflow:serving:request_example_counts",
            "The number of tensorflow.Examples per request.",
            ["model"],
            buckets=EXAMPLE_COUNT_BUCKETS,
            registry=tf,
        )
        self._example_count_total = Counter(
            ":tensorflow:serving:request_example_count_total",
            "The total number of tensorflow.Examples.",
            ["model"],
            registry=tf,
        )
        # -- tfstack's --------------------------------------------------------------------
        self._requests = Counter(
            "tfstack_requests",
            "Requests by model, version, API, entry point and canonical status code.",
            ["model", "version", "api", "entrypoint", "status"],
            registry=ours,
        )
        self._latency = Histogram(
            "tfstack_request_latency_seconds",
            "Wall time of a request from decoding to response, in seconds.",
            ["model", "version", "api", "entrypoint"],
            buckets=TFSTACK_LATENCY_BUCKETS_S,
            registry=ours,
        )
        self._batch_size = Histogram(
            "tfstack_batch_size",
            "Sizes of the batches the batching scheduler ran.",
            ["model", "signature"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=ours,
        )
        self._model_events = Counter(
            "tfstack_model_events",
            "Model version life-cycle events: load, unload, load_failed.",
            ["model", "version", "event"],
            registry=ours,
        )
        self._request_series: dict[tuple, tuple] = {}  # observe_request's label lookups
        # process_resident_memory_bytes, process_open_fds, ...: what an operator (and the
        # reliability tests) watch for leaks, as most Prometheus exporters offer.
        ProcessCollector(registry=ours)

    def observe_request(
        self,
        model: str,
        version: int | None,
        api: str,
        status: str,
        seconds: float,
        entrypoint: str = GRPC,
    ) -> None:
        """One finished request. `api` as TF Serving names it ("Predict", "Classify", ...),
        `status` a canonical code name ("OK", "NOT_FOUND", ...)."""
        key = (model, version, api, status, entrypoint)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series.setdefault(key, self._new_request_series(*key))
        requests, latency, tf_count, tf_latency = series
        requests.inc()
        latency.observe(seconds)
        if tf_count is not None:
            tf_count.inc()
        if tf_latency is not None:
            tf_latency.observe(seconds * 1e6)

    def _new_request_series(
        self, model: str, version: int | None, api: str, status: str, entrypoint: str
    ) -> tuple[Counter, Histogram, Counter | None, Histogram | None]:
        """The children one kind of request updates; looking labels up costs more than
        the update itself, so observe_request keeps them (as many as there are series)."""
        version_label = "" if version is None else str(version)
        counted = api in TF_COUNTED_APIS
        return (
            self._requests.labels(model, version_label, api, entrypoint, status),
            self._latency.labels(model, version_label, api, entrypoint),
            self._request_count.labels(model, status) if counted else None,
            # TF Serving records latency of successful requests only
            self._request_latency.labels(model, api, entrypoint)
            if counted and status == "OK"
            else None,
        )

    def observe_examples(self, model: str, count: int) -> None:
        """tf.Examples in one Classify/Regress/MultiInference request."""
        self._example_counts.labels(model).observe(count)
        self._example_count_total.labels(model).inc(count)

    def observe_batch_size(self, model: str, signature: str, size: int) -> None:
        """One batch run by the batching scheduler."""
        self._batch_size.labels(model, signature).observe(size)

    def model_event(self, model: str, version: int, event: str) -> None:
        """A version was loaded, unloaded or failed to load (LOAD, UNLOAD, LOAD_FAILED)."""
        self._model_events.labels(model, str(version), event).inc()

    def on_state_change(self, servable_id: ServableId, status: VersionStatus) -> None:
        """A ModelManager state listener: count the transitions that are model events."""
        if status.state == State.AVAILABLE:
            self.model_event(servable_id.name, servable_id.version, LOAD)
        elif status.state == State.END:
            event = UNLOAD if status.error is None else LOAD_FAILED
            self.model_event(servable_id.name, servable_id.version, event)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus page and its content type."""
        tf_text = tf_serving_exposition(self.tf_registry.collect(), TF_TOTAL_COUNTERS)
        return tf_text.encode() + generate_latest(_WithoutCreated(self.registry)), CONTENT_TYPE


_HISTOGRAM_ORDER = {"_bucket": 0, "_sum": 1, "_count": 2}


def tf_serving_exposition(families: Iterable[Metric], total_counters: frozenset[str]) -> str:
    """Text exposition exactly as TF Serving's PrometheusExporter writes it: counters
    as integers under their own name, histogram limits and sums printed like
    absl::StrCat, buckets then _sum then _count, no HELP or _created lines."""
    lines: list[str] = []
    for family in families:
        if family.type == "counter":
            samples = [s for s in family.samples if s.name.endswith("_total")]
            name = (
                family.name + "_total" if family.name + "_total" in total_counters else family.name
            )
            if not samples:
                continue
            lines.append(f"# TYPE {name} counter")
            for sample in samples:
                lines.append(f"{name}{{{_labels(sample.labels)}}} {int(sample.value)}")
        elif family.type == "histogram":
            samples = [s for s in family.samples if s.name[len(family.name) :] in _HISTOGRAM_ORDER]
            if not samples:
                continue
            lines.append(f"# TYPE {family.name} histogram")
            samples.sort(key=lambda s: _HISTOGRAM_ORDER[s.name[len(family.name) :]])
            for sample in samples:
                labels = dict(sample.labels)
                if sample.name.endswith("_bucket"):
                    le = float(labels.pop("le"))
                    labels["le"] = "+Inf" if le == float("inf") else _number(le)
                    value = str(int(sample.value))
                elif sample.name.endswith("_sum"):
                    value = _number(sample.value)
                else:
                    value = str(int(sample.value))
                lines.append(f"{sample.name}{{{_labels(labels)}}} {value}")
    return "".join(line + "\n" for line in lines)


def _number(value: float) -> str:
    """absl::StrCat(double): six significant digits, no trailing zeros."""
    return f"{value:.6g}"


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class _WithoutCreated:
    """A registry view without the `_created` samples (noise for a scraper of counters)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield copy
