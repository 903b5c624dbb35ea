"""Command line of the local broker, for a broker that stays up between commands.

Usage::

    python -m local_servers.kafka start [--state-dir DIR] [--timeout SECONDS]
    python -m local_servers.kafka status [--state-dir DIR]
    python -m local_servers.kafka stop [--state-dir DIR]
    python -m local_servers.kafka fetch
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from local_servers import processes
from local_servers.kafka.broker import Broker
from local_servers.kafka.config import LISTENERS
from local_servers.kafka.errors import KafkaLocalError
from local_servers.kafka.iam import iam_handler_jar
from local_servers.kafka.jars import KAFKA_VERSION, fetch_jars
from local_servers.kafka.lifecycle import DEFAULT_START_TIMEOUT, running_broker, start, stop

DEFAULT_STATE_DIR = Path(".kafka-local")


def _details(broker: Broker) -> dict[str, object]:
    """What ``start`` and ``status`` print: the listeners and where the details are."""
    return {
        "version": broker.kafka_version,
        **{listener: broker.address(listener) for listener in LISTENERS},
        "log file": broker.log_file,
        "broker.json": f"{broker.broker_json} (with credentials)",
    }


def _cmd_fetch(args: argparse.Namespace) -> int:
    """Only resolve the jar cache and compile the IAM handler (a cacheable CI step)."""
    libs = fetch_jars()
    iam_handler_jar(libs)
    print(libs)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit code.
    """
    commands = processes.server_commands(
        "Kafka broker", Broker.load, running_broker, start, stop, _details, KafkaLocalError
    )
    commands["fetch"] = (_cmd_fetch, "only resolve the Kafka jars (and build the IAM handler)")
    return processes.run_command_line(
        "python -m local_servers.kafka",
        f"Local Apache Kafka {KAFKA_VERSION} for tests.",
        commands,
        default_state_dir=DEFAULT_STATE_DIR,
        start_timeout=DEFAULT_START_TIMEOUT,
        error=KafkaLocalError,
        stateless=("fetch",),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
