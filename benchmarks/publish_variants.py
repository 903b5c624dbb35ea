"""Where dbt-kafka-sync's publish loop loses time against a bare confluent-kafka loop.

    .venv/bin/python benchmarks/publish_variants.py --rows 1000000 --repeat 3

The same JSON payloads (those of benchmarks/run.py), already in memory as Arrow record
batches shaped like the tool's message query (no DuckDB, no diff, no state), are sent on
one local broker by:

  bare               the bare loop over a Python list of payloads (run.py's `python`)
  tool               dbt-kafka-sync's own Publisher.publish over the Arrow batches
  lean               a lean Arrow loop: per batch only the value column to Python; the
                     event header; one global delivery callback that maps each report
                     to its row through a per-partition FIFO of sequence numbers
  lean+partial       lean, plus a functools.partial(callback, seq) per message
  lean+import        lean, plus a per-message `from confluent_kafka import ...`
  errors-only        lean without its FIFO: the producer reports only failed messages
                     (`delivery.report.only.error`), which is what the tool now does

Each variant gets a fresh topic and producer (settings: the tool's defaults), and is
timed from the first produce to the end of flush. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import local_servers.kafka as local_kafka
import pyarrow as pa
from bench_setup import PAYLOAD_COLUMN, PAYLOAD_TABLE, build_warehouse
from confluent_kafka import Producer

from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.kafka.producer import (
    DEFAULT_PRODUCER_SETTINGS,
    POLL_EVERY,
    Publisher,
    Routing,
)

HERE = Path(__file__).resolve().parent
BATCH_ROWS = 50_000  # as dbt_kafka_sync.job.BATCH_ROWS
EVENT_HEADERS = [("dbt-kafka-sync-event", b"added")]
# (bootstrap, topic, table, partitions) -> (seconds, messages delivered)
Variant = Callable[[str, str, pa.Table, int], tuple[float, int]]


def message_table(rows: int, work: Path) -> pa.Table:
    """The tool's message columns for a backfill of `rows` rows; the topic is filled later."""
    warehouse = work / "warehouse.duckdb"
    build_warehouse(warehouse, rows)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        table: pa.Table = con.sql(
            f"""
            SELECT row_number() OVER (ORDER BY id) AS seq, 'added' AS event,
                   NULL::VARCHAR AS key, {PAYLOAD_COLUMN} AS value,
                   CAST(id AS VARCHAR) AS row_key, NULL::VARCHAR AS row_error,
                   NULL::VARCHAR AS topic, NULL::INTEGER AS partition
            FROM {PAYLOAD_TABLE} ORDER BY id
            """
        ).to_arrow_table()
    return table


def with_topic(table: pa.Table, topic: str) -> pa.Table:
    index = table.schema.get_field_index("topic")
    return table.set_column(index, "topic", pa.repeat(pa.scalar(topic), len(table)))


def new_producer(bootstrap: str, on_delivery: Any = None) -> Any:
    settings: dict[str, Any] = {**DEFAULT_PRODUCER_SETTINGS, "bootstrap.servers": bootstrap}
    if on_delivery is not None:
        settings["on_delivery"] = on_delivery
    producer = Producer(settings)
    producer.list_topics(timeout=10)
    return producer


def produce(producer: Any, *args: Any, **kwargs: Any) -> None:
    """producer.produce, serving delivery reports while the local queue is full."""
    while True:
        try:
            producer.produce(*args, **kwargs)
            return
        except BufferError:
            producer.poll(0.5)


# ------------------------------------------------------------------------------ variants


def bare(bootstrap: str, topic: str, table: pa.Table, partitions: int) -> tuple[float, int]:
    payloads = table.column("value").to_pylist()
    delivered = [0]

    def on_delivery(error: Any, _message: Any) -> None:
        if error is None:
            delivered[0] += 1

    producer = new_producer(bootstrap, on_delivery)
    start = time.perf_counter()
    for index, payload in enumerate(payloads):
        produce(producer, topic, payload, partition=index % partitions)
        if index % POLL_EVERY == 0:
            producer.poll(0)
    producer.flush()
    return _done(start, delivered[0])


def tool(bootstrap: str, topic: str, table: pa.Table, partitions: int) -> tuple[float, int]:
    publisher = Publisher(KafkaTarget(bootstrap_servers=bootstrap), HERE)
    publisher.metadata()
    routing = Routing({topic: partitions}, [], event_header=True)
    batches = with_topic(table, topic).to_batches(BATCH_ROWS)
    start = time.perf_counter()
    deliveries = publisher.publish(batches, routing)
    return _done(start, deliveries.produced - len(deliveries.failed_messages))


class FifoDeliveries:
    """Maps each delivery report to its row: reports of a partition come in produce order."""

    def __init__(self, partitions: int) -> None:
        self.pending: list[deque[int]] = [deque() for _ in range(partitions)]
        self.delivered: list[int] = []
        self.failed: list[int] = []

    def on_delivery(self, error: Any, message: Any) -> None:
        seq = self.pending[message.partition()].popleft()
        (self.delivered if error is None else self.failed).append(seq)

    def on_row(self, seq: int, error: Any, _message: Any) -> None:
        (self.delivered if error is None else self.failed).append(seq)


def lean(mode: str) -> Variant:
    """The lean Arrow loop; mode '' or 'partial' (per-message callback) or 'import'."""

    def run(bootstrap: str, topic: str, table: pa.Table, partitions: int) -> tuple[float, int]:
        tracker = FifoDeliveries(partitions)
        producer = new_producer(bootstrap, tracker.on_delivery)
        poll = producer.poll
        start = time.perf_counter()
        count = 0
        for batch in table.to_batches(BATCH_ROWS):
            seqs = batch.column("seq").to_pylist()
            values = batch.column("value").to_pylist()
            for seq, value in zip(seqs, values, strict=True):
                partition = count % partitions
                if mode == "import":
                    from confluent_kafka import KafkaException  # noqa: F401
                if mode == "partial":
                    callback = partial(tracker.on_row, seq)
                    produce(
                        producer, topic, value, None, partition, callback, headers=EVENT_HEADERS
                    )
                else:  # a report pops the oldest seq of its partition: append before produce
                    tracker.pending[partition].append(seq)
                    produce(producer, topic, value, None, partition, headers=EVENT_HEADERS)
                count += 1
                if count % POLL_EVERY == 0:
                    poll(0)
        producer.flush()
        return _done(start, len(tracker.delivered))

    return run


def errors_only(bootstrap: str, topic: str, table: pa.Table, partitions: int) -> tuple[float, int]:
    """The lean loop with `delivery.report.only.error`: no report for delivered messages."""
    failed: list[Any] = []
    settings: dict[str, Any] = {
        **DEFAULT_PRODUCER_SETTINGS,
        "bootstrap.servers": bootstrap,
        "delivery.report.only.error": True,
        "on_delivery": lambda error, message: failed.append(message),
    }
    producer = Producer(settings)
    producer.list_topics(timeout=10)
    poll = producer.poll
    start = time.perf_counter()
    count = 0
    for batch in table.to_batches(BATCH_ROWS):
        for value in batch.column("value").cast(pa.binary()).to_pylist():
            produce(producer, topic, value, None, count % partitions, headers=EVENT_HEADERS)
            count += 1
            if count % POLL_EVERY == 0:
                poll(0)
    producer.flush()
    return _done(start, count - len(failed))


def _done(start: float, delivered: int) -> tuple[float, int]:
    return time.perf_counter() - start, delivered


VARIANTS: dict[str, Variant] = {
    "bare": bare,
    "tool": tool,
    "lean": lean(""),
    "lean+partial": lean("partial"),
    "lean+import": lean("import"),
    "errors-only": errors_only,
}


def measure(broker: local_kafka.Broker, name: str, table: pa.Table, args: Any, run: int) -> float:
    topic = f"variant-{name.replace('+', '-')}-{run}"
    broker.create_topic(topic, args.partitions)
    seconds, delivered = VARIANTS[name](broker.plaintext, topic, table, args.partitions)
    if delivered != len(table):
        print(f"  {name}: only {delivered:,} of {len(table):,} delivered", file=sys.stderr)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dks-variants-") as tmp:
        table = message_table(args.rows, Path(tmp))
        broker = local_kafka.start(Path(tmp) / "broker")
        try:
            times: dict[str, list[float]] = {name: [] for name in args.only}
            for run in range(args.repeat):  # interleaved, so drift hits every variant alike
                for name in args.only:
                    times[name].append(measure(broker, name, table, args, run))
                    print(f"  {name} run {run + 1}: {times[name][-1]:.2f} s", file=sys.stderr)
        finally:
            broker.stop()
    print(f"{args.rows:,} messages, {args.partitions} partitions, {args.repeat} runs each\n")
    print("| variant | median s | msg/s (median) | min s | max s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(
            f"| {name} | {median:.2f} | {args.rows / median:,.0f} | {min(seconds):.2f} |"
            f" {max(seconds):.2f} |"
        )


if __name__ == "__main__":
    main()
