"""Prometheus metrics of one ingest instance, in its own `CollectorRegistry` (so tests and
several instances in one process never collide); the API serves `registry`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "ecocluster_ingest_messages", "MQTT messages received", ["kind"], registry=r
        )
        self.accepted = Counter(
            "ecocluster_ingest_readings_accepted", "Readings made durable", registry=r
        )
        self.rejected = Counter(
            "ecocluster_ingest_readings_rejected",
            "Readings or payloads dead-lettered, by reason",
            ["reason"],
            registry=r,
        )
        self.store_dropped = Counter(
            "ecocluster_ingest_store_dropped",
            "Points the store reported dropping (InfluxDB's dropped=N), dead-lettered",
            registry=r,
        )
        self.register_flags = Counter(
            "ecocluster_ingest_register_flags",
            "Register readings flagged for review (drop, jump, reset, shift, rollover)",
            ["kind"],
            registry=r,
        )
        self.batches = Counter(
            "ecocluster_ingest_batches", "Batches flushed, by outcome", ["outcome"], registry=r
        )
        self.write_seconds = Histogram(
            "ecocluster_ingest_write_seconds",
            "Store write latency per batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.spool_bytes = Gauge(
            "ecocluster_ingest_spool_bytes", "Bytes waiting in the on-disk spool", registry=r
        )
        self.spool_batches = Gauge(
            "ecocluster_ingest_spool_batches", "Batches waiting in the on-disk spool", registry=r
        )
        self.spool_full = Gauge(
            "ecocluster_ingest_spool_full", "1 while the spool is full (acks held)", registry=r
        )
        self.connected = Gauge(
            "ecocluster_ingest_broker_connected", "1 while connected to the broker", registry=r
        )
        self.unacked = Gauge(
            "ecocluster_ingest_unacked_messages",
            "QoS 1 messages received, not yet acked",
            registry=r,
        )

    def count_rejected(self, reason: str, count: int) -> None:
        self.rejected.labels(reason).inc(count)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (tests, the demo summary); 0 when never set."""
        found = self.registry.get_sample_value(name, labels or None)
        return float(found) if found is not None else 0.0
