"""A long sync says how far it has come."""

from __future__ import annotations

import logging

import pytest

from dbt_kafka_sync.kafka.progress import Progress


def test_progress_names_the_sync_the_count_and_the_share(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("customers -> crm.customers", 1_000_000, every_s=0)
    with caplog.at_level(logging.INFO, logger="dbt_kafka_sync"):
        progress(250_000)

    [record] = caplog.records
    assert record.getMessage().startswith(
        "customers -> crm.customers: 250,000 of 1,000,000 messages sent (25%), "
    )
    assert record.getMessage().endswith(" msg/s")


def test_progress_stays_quiet_between_reports(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("orders -> t", 10, every_s=3600)
    with caplog.at_level(logging.INFO, logger="dbt_kafka_sync"):
        progress(5)

    assert caplog.records == []
