"""The Python ceiling: a bare confluent-kafka loop over pre-built JSON payloads.

    python benchmarks/python_loop.py --payloads FILE.parquet --bootstrap HOST:PORT --topic T

The payloads are read into memory first (not timed); then produce + poll(0) every
1,000 messages + flush is timed, with one global delivery callback. Messages go
round-robin over the partitions, as dbt-kafka-sync places messages without a key.
Prints one JSON object: seconds, messages, delivered, failed, bytes.

The --event-header and --per-message-callback flags add, one at a time, what
dbt-kafka-sync does per message (an event header; a functools.partial delivery callback
per message carrying the row's sequence number), to measure what each costs.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import Producer

POLL_EVERY = 1_000
EVENT_HEADERS = [("dbt-kafka-sync-event", b"added")]


class Counter:
    """Delivery reports: how many messages were delivered and how many failed."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.seqs: list[int] = []

    def on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1

    def on_row_delivery(self, seq: int, error: Any, _message: Any) -> None:
        if error is None:
            self.seqs.append(seq)
            self.delivered += 1
        else:
            self.failed += 1


def load_payloads(path: str) -> list[str]:
    """Read the payload column into a list of Python strings."""
    table = pq.read_table(path)
    payloads: list[str] = table.column(0).to_pylist()
    return payloads


def produce_all(producer: Any, topic: str, payloads: list[str], partitions: int) -> None:
    """The bare loop: produce each payload, poll(0) every POLL_EVERY, then flush."""
    produce, poll = producer.produce, producer.poll
    for index, payload in enumerate(payloads):
        while True:
            try:
                produce(topic, payload, partition=index % partitions)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                poll(0.5)
        if index % POLL_EVERY == 0:
            poll(0)
    producer.flush()


def produce_like_the_tool(
    producer: Any,
    topic: str,
    payloads: list[str],
    partitions: int,
    counter: Counter,
    args: argparse.Namespace,
) -> None:
    """The bare loop plus the per-message extras dbt-kafka-sync has (see the flags)."""
    produce, poll = producer.produce, producer.poll
    headers = EVENT_HEADERS if args.event_header else None
    for index, payload in enumerate(payloads):
        callback = partial(counter.on_row_delivery, index) if args.per_message_callback else None
        while True:
            try:
                produce(
                    topic,
                    payload,
                    partition=index % partitions,
                    headers=headers,
                    on_delivery=callback,
                )
                break
            except BufferError:
                poll(0.5)
        if index % POLL_EVERY == 0:
            poll(0)
    producer.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payloads", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--producer-config", default="{}", help="librdkafka settings, JSON")
    parser.add_argument("--event-header", action="store_true")
    parser.add_argument("--per-message-callback", action="store_true")
    args = parser.parse_args()

    payloads = load_payloads(args.payloads)
    counter = Counter()
    config = json.loads(args.producer_config)
    config.update({"bootstrap.servers": args.bootstrap, "on_delivery": counter.on_delivery})
    producer = Producer(config)
    producer.list_topics(args.topic, timeout=10)  # connect before the clock starts
    start = time.perf_counter()
    if args.event_header or args.per_message_callback:
        produce_like_the_tool(producer, args.topic, payloads, args.partitions, counter, args)
    else:
        produce_all(producer, args.topic, payloads, args.partitions)
    seconds = time.perf_counter() - start
    size = sum(len(p.encode()) for p in payloads)
    summary = {"seconds": seconds, "messages": len(payloads), "bytes": size}
    summary.update({"delivered": counter.delivered, "failed": counter.failed})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
