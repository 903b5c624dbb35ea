"""Failed messages lead back to their rows; every other row counts as delivered."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pytest
from confluent_kafka import KafkaError

from dbt_kafka_sync.kafka.delivery import (
    TOO_MANY,
    UNTRACED,
    Deliveries,
    FailureReports,
    trace_failures,
)

TOO_LARGE = "Broker: Message size too large (MSG_SIZE_TOO_LARGE)"


@dataclass
class Report:
    """What a delivery report tells about its message."""

    _topic: str
    _key: bytes | None
    _value: bytes | None

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def messages(*rows: tuple[int, str, str | None, str | None]) -> list[pa.RecordBatch]:
    """Message batches (seq, topic, key, value), as the message query gives them."""
    seq, topic, key, value = (list(column) for column in zip(*rows, strict=True))
    batch = pa.RecordBatch.from_pydict(
        {"seq": seq, "topic": topic, "key": key, "value": value},
        schema=pa.schema(
            [
                ("seq", pa.int64()),
                ("topic", pa.string()),
                ("key", pa.string()),
                ("value", pa.string()),
            ]
        ),
    )
    return [batch.slice(0, 2), batch.slice(2)]  # two batches


def reported(*reports: Report) -> Deliveries:
    """Deliveries of 5 produced messages whose failure reports were these."""
    collector = FailureReports()
    collector.on_delivery(None, Report("t", b"ok", b"{}"))  # a success, if reported anyway
    for report in reports:
        collector.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), report)
    failed_messages, too_many = collector.take()
    return Deliveries(produced=5, failed_messages=failed_messages, too_many_failed=too_many)


ROWS = messages(
    (1, "t", "a", '{"v": 1}'),
    (2, "t", None, '{"v": 2}'),
    (3, "t", None, None),  # a tombstone
    (4, "u", "é", '{"v": 4}'),
    (5, "t", "a", '{"v": 1}'),  # the same message as row 1
    (6, "t", "b", '{"v": 6}'),
)


def test_rows_of_failed_messages_are_found_by_topic_key_and_value() -> None:
    deliveries = reported(
        Report("t", None, b'{"v": 2}'),
        Report("t", None, None),
        Report("u", "é".encode(), b'{"v": 4}'),
    )
    deliveries.refused = {6: "the topic column is NULL"}

    trace_failures(deliveries, ROWS)

    assert deliveries.failed == {
        2: TOO_LARGE,
        3: TOO_LARGE,
        4: TOO_LARGE,
        6: "the topic column is NULL",
    }
    assert deliveries.delivered == 2  # 5 produced, 3 of them failed
    assert deliveries.failed_array().to_pylist() == [2, 3, 4, 6]


def test_messages_alike_all_count_as_failed() -> None:
    deliveries = reported(Report("t", b"a", b'{"v": 1}'))

    trace_failures(deliveries, ROWS)

    assert deliveries.failed == {1: TOO_LARGE, 5: TOO_LARGE}
    assert deliveries.delivered == 3


def test_a_report_matching_no_row_fails_every_row() -> None:
    deliveries = reported(Report("t", b"a", b'{"v": 999}'))
    deliveries.refused = {6: "the topic column is NULL"}

    trace_failures(deliveries, ROWS)

    assert deliveries.failed == {1: UNTRACED, 2: UNTRACED, 3: UNTRACED, 4: UNTRACED, 5: UNTRACED,
                                 6: "the topic column is NULL"}  # fmt: skip
    assert deliveries.delivered == 0


def test_without_failures_every_sent_row_is_delivered() -> None:
    deliveries = reported()

    trace_failures(deliveries, [])

    assert deliveries.failed == {}
    assert deliveries.delivered == 5
    assert FailureReports().take() == ([], False)


def test_past_the_traced_maximum_every_row_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dbt_kafka_sync.kafka.delivery.MAX_TRACED", 1)
    deliveries = reported(Report("t", None, b'{"v": 2}'), Report("t", None, None))
    deliveries.refused = {6: "the topic column is NULL"}

    assert len(deliveries.failed_messages) == 1
    trace_failures(deliveries, ROWS)

    assert deliveries.failed == dict.fromkeys([1, 2, 3, 4, 5], TOO_MANY) | deliveries.refused
    assert deliveries.delivered == 0
