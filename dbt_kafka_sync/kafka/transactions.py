"""Exactly-once delivery: each sync's changes in one Kafka transaction, with its marker.

The protocol, with the state (see the README's "Exactly-once delivery"):

1. The sync's producer has a transactional id of its own, the same on every run, so
   initialising it fences any earlier producer of the sync and ends its transaction
   (committed if it had asked to commit, aborted otherwise).
2. A commit the state prepared earlier is then completed if its marker is on the progress
   topic (read_committed), or discarded if not.
3. The changes are sent in a transaction and flushed. A delivery failure aborts it.
4. The state records the delivered set as prepared, with its marker; the marker is sent
   in the transaction, and the transaction committed.
5. The state applies the prepared set to the snapshot.

A process killed anywhere leaves either no prepared set (nothing visible to
read_committed consumers; the changes are found again) or a prepared set whose marker
decides, at step 2 of the next run, whether it is applied.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import KafkaError, describe_kafka_error
from dbt_kafka_sync.kafka.markers import Marker, ProgressTopic, partition_of
from dbt_kafka_sync.kafka.producer import Publisher

if TYPE_CHECKING:
    from dbt_kafka_sync.config.kafka import KafkaTarget

log = logging.getLogger(__name__)

# The longest a transaction may stay open: the brokers' default maximum
# (transaction.max.timeout.ms). A sync must publish within it.
TRANSACTION_TIMEOUT_MS = 900_000
SAFE_SHARE = 0.8  # of the timeout, at most, for sending; the rest for preparing and committing
INIT_TIMEOUT_S = 60.0
COMMIT_RETRIES = 3


def transactional_id(prefix: str, sync_id: str) -> str:
    """The sync's transactional id: stable across runs, one per Kafka target and sync."""
    return f"{prefix}:{sync_id}"


class TransactionOutcomeUnknown(KafkaError):
    """The commit's outcome is not known: the next run reads it from the progress topic."""


class SyncTransaction:
    """The transactional producer of one sync, with the progress topic it commits on."""

    def __init__(self, target: KafkaTarget, base_dir: Path, sync_id: str) -> None:
        self.transactional_id = transactional_id(target.transactional_id_prefix, sync_id)
        settings: dict[str, Any] = {
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        }
        self.publisher = Publisher(target, base_dir, settings)
        self._began = 0.0  # when the open transaction began
        self.progress = ProgressTopic(target, base_dir, target.progress_topic)
        self._partitions = self.progress.partitions()
        self._call("initialise the transactions of", self.publisher.client.init_transactions)

    def next_marker(self) -> Marker:
        """A marker for the next transaction, at the end of the sync's progress partition."""
        partition = partition_of(self.transactional_id, self._partitions)
        return Marker(
            topic=self.progress.topic,
            partition=partition,
            start_offset=self.progress.offsets(self.progress.topic, partition)[1],
            marker_id=secrets.token_hex(8),
            transactional_id=self.transactional_id,
        )

    def begin(self) -> None:
        """Open the transaction the sync's messages go in."""
        client = self.publisher.client
        self._call("begin a transaction of", lambda _timeout: client.begin_transaction())
        self._began = time.monotonic()

    def check_time_left(self) -> None:
        """Before preparing the commit: the transaction is not about to time out.

        Raises:
            KafkaError: when the sync took most of the transaction's time already; its
                transaction would be aborted by the brokers on the way to its commit.
        """
        took = time.monotonic() - self._began
        if took > TRANSACTION_TIMEOUT_MS / 1000 * SAFE_SHARE:
            raise KafkaError(
                f"sending the sync's changes took {took:.0f} s, too close to the transaction"
                f" timeout ({TRANSACTION_TIMEOUT_MS // 1000} s): its transaction is aborted and"
                " nothing of it is visible to read_committed consumers",
                hint="a sync in exactly-once delivery must be sent in one transaction; send"
                " this one (e.g. its backfill) with `delivery: at_least_once`, then switch back",
            )

    def commit(self, marker: Marker, value: bytes) -> None:
        """Send the marker in the transaction, and commit the transaction.

        Raises:
            KafkaError: the transaction was aborted (nothing of it is visible).
            TransactionOutcomeUnknown: it may or may not have committed.
        """
        from confluent_kafka import KafkaException

        client = self.publisher.client
        key = marker.transactional_id.encode()
        for attempt in range(1, COMMIT_RETRIES + 1):
            try:
                if attempt == 1:
                    self._produce_marker(marker, key, value)
                client.commit_transaction(TRANSACTION_TIMEOUT_MS / 1000)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else exc
                if getattr(error, "txn_requires_abort", lambda: False)():
                    self.abort()
                    raise KafkaError(
                        f"the transaction was aborted: {describe_kafka_error(error)}"
                    ) from None
                if not getattr(error, "retriable", lambda: False)() or attempt == COMMIT_RETRIES:
                    raise self._unknown(error) from None
                log.info("committing the transaction again: %s", describe_kafka_error(error))
        raise AssertionError("unreachable")

    def _produce_marker(self, marker: Marker, key: bytes, value: bytes) -> None:
        client = self.publisher.client
        while True:
            try:
                client.produce(marker.topic, value, key, marker.partition)
                return
            except BufferError:  # the local queue is full: let it drain
                client.poll(0.5)

    def abort(self) -> None:
        """Abort the open transaction: nothing of it becomes visible to read_committed readers."""
        self._call("abort the transaction of", self.publisher.client.abort_transaction)

    def holds(self, marker: Marker) -> bool:
        """Tell whether an earlier transaction of this sync committed (see ProgressTopic.holds).

        Raises:
            KafkaError: when the marker was written by a producer of another transactional
                id (the prefix changed since): that producer was not fenced, so its
                transaction may still be open.
        """
        if marker.transactional_id != self.transactional_id:
            raise KafkaError(
                f"an interrupted run prepared a commit in transaction"
                f" '{marker.transactional_id}', and this run's transactional id is"
                f" '{self.transactional_id}': its outcome cannot be settled safely",
                hint="set transactional_id_prefix back until that commit is settled",
            )
        return self.progress.holds(marker)

    def close(self) -> None:
        """Let go of the clients."""
        self.progress.close()

    def _call(self, what: str, action: Any) -> None:
        from confluent_kafka import KafkaException

        try:
            action(INIT_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            raise KafkaError(
                f"cannot {what} producer '{self.transactional_id}': {describe_kafka_error(error)}",
                hint=_hint(error),
            ) from None

    def _unknown(self, error: Any) -> TransactionOutcomeUnknown:
        return TransactionOutcomeUnknown(
            f"the commit of transaction '{self.transactional_id}' failed"
            f" ({describe_kafka_error(error)}); whether it committed is read from the progress"
            " topic by the next run, which then completes or discards this run's state commit",
            hint=_hint(error),
        )


def _hint(error: Any) -> str:
    name = str(error.name()) if hasattr(error, "name") else ""
    if "FENCED" in name:
        return (
            "another producer with the same transactional id started: another run of this"
            " sync (two runs must not share a state), or a run of another project using the"
            " same kafka_sync target name and model; see transactional_id_prefix"
        )
    if "AUTHORIZATION" in name:
        return "the Kafka user needs WRITE and DESCRIBE on the transactional id (ACLs)"
    return "check that the brokers are up and support transactions (Kafka 0.11 or later)"
