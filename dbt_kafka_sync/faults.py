"""Named fault points, for the fault tests: the run kills itself, or fails a write, at a step.

`DBT_KAFKA_SYNC_FAULT=<step>` makes the process SIGKILL itself when it reaches that step;
`<step>:enospc` raises the error of a full disk there instead, and `<step>:stop` stops the
process (SIGSTOP) until it is continued, for a test to act meanwhile. Unset (always,
outside the tests), each point is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal

FAULT_ENV = "DBT_KAFKA_SYNC_FAULT"

# The steps, in the order a sync reaches them (a staged commit's, while messages are sent).
DURING_STAGING = "during-staging"  # a staged commit's rows written, its transaction still open
AFTER_PUBLISH = "after-publish"  # every message handed to the producer, none flushed yet
AFTER_FLUSH = "after-flush"  # every message delivered or failed, nothing committed yet
DURING_PREPARE = "during-prepare"  # exactly-once: inside the transaction keeping the changes
BEFORE_KAFKA_COMMIT = "before-kafka-commit"  # exactly-once: the state holds the prepared set
AFTER_KAFKA_COMMIT = "after-kafka-commit"  # exactly-once: Kafka committed, the state not yet
DURING_STATE_COMMIT = "during-state-commit"  # inside the state's commit transaction
STEPS = (
    DURING_STAGING,
    AFTER_PUBLISH,
    AFTER_FLUSH,
    DURING_PREPARE,
    BEFORE_KAFKA_COMMIT,
    AFTER_KAFKA_COMMIT,
    DURING_STATE_COMMIT,
)


def reached(step: str) -> None:
    """Apply the fault set for this step, if any."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    name, _, kind = wanted.partition(":")
    if name != step:
        return
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGSTOP if kind == "stop" else signal.SIGKILL)
