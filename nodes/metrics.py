"""A node's Prometheus metrics: one registry per node, read at scrape time from its live status document.

Every family has HELP and TYPE and the same constant labels on every role (node, role, chain); what varies
inside a family is a label (reason, group, event), never part of a name. Served at /metrics by the API
(nodes/api) and written to data/metrics.prom for node_exporter's textfile collector.

Families whose status field a role does not have are absent on that role (a meter-point node has no
height); a missing value is absent, never 0. docs/operations.md lists them; docs/alerts.yml and
docs/grafana-dashboard.json use only these names (a test checks them against a live node).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stromledger import __version__

# No `<name>_created` series: they double the families and nothing here needs a counter's creation time.
disable_created_metrics()

# Commit latency from gate closure: a devnet commits within a second, a 15-minute production period within
# a few; the buckets cover both and a slow round (seconds).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# (status field, metric name, help) of the plain gauges; a bool counts as 0/1.
GAUGES = (
    ("height", "height", "The height (= settlement period index) this validator is working on."),
    ("round", "round", "The consensus round of the current height."),
    ("last_height", "last_committed_height", "The newest height in this node's ledger."),
    ("next_height", "next_height", "The next height a balancing-group node will verify."),
    ("quorum", "quorum", "1 when this validator is connected to enough validators for a quorum (itself "
                         "included), else 0."),
    ("catching_up", "catching_up", "1 while the node replays committed heights it missed, else 0."),
    ("behind_periods", "behind_periods", "Heights whose gate has closed but that this node has not committed."),
    ("evidence", "evidence", "Evidence records (duplicate votes) this validator holds."),
    ("pending", "outbox_pending", "Signed submissions waiting for a validator's receipt."),
    ("started_at", "start_time_seconds", "Unix time the node process started."),
)
# (status field, metric name, help) of counters (monotonic since the node started).
COUNTERS = (
    ("commits", "commits", "Heights this validator committed since it started (catch-up included)."),
    ("exports", "exports", "Billing exports this validator wrote since it started."),
)


class NodeMetrics:
    """What a node exports. `bind(status, net_stats)` connects it to the running node; the commit latency
    histogram is observed by the validator."""

    def __init__(self, node: str, role: str, chain: str):
        self.labels = {"node": node, "role": role, "chain": chain}
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_latency: Optional[Any] = None  # validators only: other roles commit nothing
        if role == "validator":
            self.commit_latency = Histogram(
                "stromledger_commit_latency_seconds",
                "Seconds from a height's gate closure to this validator's commit; live heights only (commits "
                "replayed while catching up are not observed).",
                labelnames=list(self.labels), buckets=LATENCY_BUCKETS, registry=self.registry,
            ).labels(**self.labels)
        self._status: Callable[[], dict[str, Any]] = dict
        self._snapshot: Optional[dict[str, Any]] = None
        self._net_stats: Callable[[], dict[str, int]] = dict
        self.registry.register(_StatusCollector(self))

    def bind(self, status: Callable[[], dict[str, Any]], net_stats: Callable[[], dict[str, int]]) -> None:
        self._status, self._net_stats = status, net_stats

    def exposition(self, status: Optional[dict[str, Any]] = None) -> bytes:
        """The Prometheus text format (0.0.4) of every family, HELP and TYPE included; from `status` when
        given (the document just written to status.json), else from the bound node's live status."""
        self._snapshot = status
        try:
            return generate_latest(self.registry)
        finally:
            self._snapshot = None


class _StatusCollector:
    def __init__(self, metrics: NodeMetrics):
        self.m = metrics

    def describe(self) -> list:
        return []  # families depend on the role: collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        doc = self.m._snapshot if self.m._snapshot is not None else self.m._status()
        names = list(self.m.labels)
        values = list(self.m.labels.values())

        def gauge(name: str, help: str, value: Any, extra: Optional[dict[str, Any]] = None) -> Optional[Metric]:
            if extra is not None:
                fam = GaugeMetricFamily(f"stromledger_{name}", help, labels=names + ["group"])
                for key, v in sorted(extra.items()):
                    fam.add_metric(values + [str(key)], _number(v))
                return fam
            if _is_number(value):
                fam = GaugeMetricFamily(f"stromledger_{name}", help, labels=names)
                fam.add_metric(values, _number(value))
                return fam
            return None

        def counter(name: str, help: str, samples: dict[str, Any], label: Optional[str] = None) -> Metric:
            fam = CounterMetricFamily(f"stromledger_{name}", help, labels=names + ([label] if label else []))
            for key, v in sorted(samples.items()):
                if _is_number(v):
                    fam.add_metric(values + ([str(key)] if label else []), _number(v))
            return fam

        info = GaugeMetricFamily("stromledger_node_info", "Always 1: what this node runs.",
                                 labels=names + ["version"])
        info.add_metric(values + [__version__], 1)
        yield info
        for field, name, help in GAUGES:
            fam = gauge(name, help, doc.get(field))
            if fam is not None:
                yield fam
        for field, name, help in COUNTERS:
            if _is_number(doc.get(field)):
                yield counter(name, help, {"": doc[field]})
        peers = doc.get("peers")
        if isinstance(peers, list):
            peers = len(peers)
        if _is_number(peers):
            yield gauge("peers", "Registry peers this node is connected to (validators, and on a validator also "
                                 "light and balancing-group nodes).", peers)
        if "halted" in doc:
            yield gauge("halted", "1 when the node stopped following the chain (see its log), else 0.",
                        bool(doc["halted"]))
        if "settlement_waiting" in doc:
            waiting = doc["settlement_waiting"]
            yield gauge("settlement_waiting", "1 while a committed height cannot be applied here yet (a listed "
                                              "batch could not be fetched), else 0.", waiting is not None)
        yield counter("rejections", "Input this node refused, by reason (one log line each).",
                      doc.get("rejections") or {}, "reason")
        refused = _refused_by_validators(doc)
        if refused is not None:
            yield counter("refused_by_validators", "Items of this node's submissions the validators refused, "
                                                   "by reason.", refused, "reason")
        drops = doc.get("consensus_drops")
        if isinstance(drops, dict):
            yield counter("consensus_drops", "Consensus messages the state machine dropped, by reason.", drops,
                          "reason")
        yield counter("net_events", "Network events of this node's libp2p host (frames, bytes, rejects, "
                                    "dial failures), by event.", self.m._net_stats() or {}, "event")
        batches = doc.get("batches")
        if isinstance(batches, dict):
            if _is_number(batches.get("received")):
                yield counter("batches_received", "Batches this validator admitted and stored since it started.",
                              {"": batches["received"]})
            fam = gauge("batches_pending", "Admitted batches not yet settled by a seal.", batches.get("pending"))
            if fam is not None:
                yield fam
        yield from _verified(doc, gauge)
        last = doc.get("last_commit")
        if isinstance(last, dict):
            yield from _last_commit(last, gauge)


def _last_commit(last: dict[str, Any], gauge) -> Iterator[Metric]:
    fam = gauge("last_commit_round", "The round in which the last height committed.", last.get("round"))
    if fam is not None:
        yield fam
    fam = gauge("net_export_wh", "Net export of the network (Wh) in the last committed period.",
                last.get("net_export_wh"))
    if fam is not None:
        yield fam
    groups = last.get("groups")
    if isinstance(groups, dict) and groups:
        yield gauge("group_imbalance_wh", "Imbalance (Wh, positive = long) per balancing group in the last "
                                          "committed period.", None,
                    {g: v.get("imb") for g, v in groups.items() if isinstance(v, dict) and _is_number(v.get("imb"))})


def _verified(doc: dict[str, Any], gauge) -> Iterator[Metric]:
    """What a light (meter-point) or balancing-group node verified."""
    verified = doc.get("verified")
    if not isinstance(verified, dict):
        return
    for field, name, help in (
        ("periods", "verified_periods", "Periods whose readings this light node verified with a proof."),
        ("readings", "verified_readings", "Readings this light node verified as settled exactly as sent."),
        ("failures", "verification_failures", "Readings NOT settled as sent (see the node's log)."),
        ("late", "verified_late_readings", "Readings settled as sent only in a later version (a delay, not a failure)."),
        ("waiting", "verification_waiting", "Readings the latest version does not settle yet, re-checked in later "
                                            "versions until the correction window ends."),
        ("heights", "verified_heights", "Seals this balancing-group node rebuilt identically."),
        ("last_height", "verified_last_height", "The newest height this balancing-group node verified."),
        ("discrepancies", "discrepancies", "Seals this balancing-group node could not rebuild identically."),
    ):
        fam = gauge(name, help, verified.get(field))
        if fam is not None:
            yield fam


def _refused_by_validators(doc: dict[str, Any]) -> Optional[dict[str, Any]]:
    schedules = doc.get("schedules")
    if isinstance(schedules, dict) and isinstance(schedules.get("rejected_by_reason"), dict):
        return schedules["rejected_by_reason"]
    receipts = doc.get("receipts")
    if isinstance(receipts, dict) and isinstance(receipts.get("rejected"), dict):
        return receipts["rejected"]
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, bool))


def _number(value: Any) -> int:
    return int(value)
