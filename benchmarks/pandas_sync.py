"""What a team would write instead of dbt-kafka-sync: a straightforward pandas script.

    python benchmarks/pandas_sync.py --warehouse W.duckdb --table customers \\
        --previous customers.parquet --bootstrap HOST:PORT --topic T

It reads the table into a DataFrame, merges it with the copy it saved last time (Parquet)
to find added, changed and removed rows, serializes each row with json.dumps over
to_dict('records'), produces each message with its own delivery callback, flushes, and
saves the new copy. Prints one JSON object with the counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import duckdb

# Not a dev dependency (benchmarks/requirements.txt): `make lint` must pass without it.
import pandas as pd  # type: ignore[import-not-found,import-untyped,unused-ignore]
from confluent_kafka import Producer

KEY = "id"
Row = dict[Any, Any]
Changes = list[tuple[str, Row]]


def read_table(warehouse: str, table: str) -> pd.DataFrame:
    with duckdb.connect(warehouse, read_only=True) as con:
        frame: pd.DataFrame = con.sql(f"SELECT * FROM {table}").df()
    return frame


def records(frame: pd.DataFrame, event: str) -> Changes:
    return [(event, row) for row in frame.to_dict("records")]


def find_changes(current: pd.DataFrame, previous: pd.DataFrame | None) -> Changes:
    """Return (event, row) for every added, changed and removed row."""
    if previous is None:
        return records(current, "added")
    merged = current.merge(previous, on=KEY, how="outer", suffixes=("", "_prev"), indicator=True)
    columns = [c for c in current.columns if c != KEY]
    both = merged[merged["_merge"] == "both"]
    differs = pd.Series(False, index=both.index)
    for column in columns:
        differs |= both[column].ne(both[f"{column}_prev"])
    added = merged[merged["_merge"] == "left_only"][current.columns]
    changed = both[differs][current.columns]
    removed = merged[merged["_merge"] == "right_only"]
    removed = removed[[KEY, *(f"{c}_prev" for c in columns)]]
    removed.columns = pd.Index(current.columns)
    return records(added, "added") + records(changed, "changed") + records(removed, "removed")


def publish(producer: Any, topic: str, changes: Changes) -> dict[str, int]:
    """Produce one JSON message per change, each with its own callback; wait for all."""
    counts = {"delivered": 0, "failed": 0}
    failed_keys: list[Any] = []

    def report(key: Any, error: Any, _message: Any) -> None:
        if error is None:
            counts["delivered"] += 1
        else:
            counts["failed"] += 1
            failed_keys.append(key)

    for event, row in changes:
        value = json.dumps(row, default=str)
        key = row[KEY]
        while True:
            try:
                producer.produce(
                    topic,
                    value=value,
                    headers={"event": event},
                    on_delivery=lambda err, msg, key=key: report(key, err, msg),
                )
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    producer.flush()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--previous", required=True, help="Parquet copy of the last run")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--producer-config", default="{}", help="librdkafka settings, JSON")
    args = parser.parse_args()

    current = read_table(args.warehouse, args.table)
    previous_path = Path(args.previous)
    previous = pd.read_parquet(previous_path) if previous_path.exists() else None
    changes = find_changes(current, previous)
    config = json.loads(args.producer_config)
    config["bootstrap.servers"] = args.bootstrap
    counts = publish(Producer(config), args.topic, changes)
    if counts["failed"] == 0:
        current.to_parquet(previous_path)
    events = [event for event, _ in changes]
    summary = {e: events.count(e) for e in ("added", "changed", "removed")}
    print(json.dumps({**summary, **counts}))


if __name__ == "__main__":
    main()
