"""What a team would write for a first run instead of dbt-kafka-sync: about 20 lines.

    python benchmarks/diy_backfill.py --warehouse W.duckdb --table customers \\
        --bootstrap HOST:PORT --topic T --producer-config '{"acks": "all", ...}'

DuckDB's `to_json` turns each row into its JSON document; each one is produced with the
primary key as text for its key and an `event: added` header, `poll(0)` every 1,000
messages (and while the local queue is full), one delivery callback counting failures,
then `flush()`. No state is kept: it can only send everything again. Prints one JSON
object: messages, delivered, failed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import duckdb
from confluent_kafka import Producer

HEADERS: list[tuple[str, str | bytes | None]] = [("event", b"added")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for option in ("--warehouse", "--table", "--bootstrap", "--topic"):
        parser.add_argument(option, required=True)
    parser.add_argument("--producer-config", default="{}", help="librdkafka settings, JSON")
    args = parser.parse_args()

    failed = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal failed
        failed += error is not None

    config = json.loads(args.producer_config)
    config.update({"bootstrap.servers": args.bootstrap, "on_delivery": on_delivery})
    producer = Producer(config)
    sent = 0
    with duckdb.connect(args.warehouse, read_only=True) as con:
        cursor = con.execute(f"SELECT id::VARCHAR, to_json(t)::VARCHAR FROM {args.table} t")
        while rows := cursor.fetchmany(10_000):
            for key, value in rows:
                while True:
                    try:
                        producer.produce(args.topic, value, key, headers=HEADERS)
                        break
                    except BufferError:  # the local queue is full: let it drain
                        producer.poll(0.5)
                sent += 1
                if sent % 1_000 == 0:
                    producer.poll(0)
    producer.flush()
    print(json.dumps({"messages": sent, "delivered": sent - failed, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
