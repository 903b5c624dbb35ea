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
import time
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


def _cmd_start(args: argparse.Namespace) -> int:
    """Start a broker, or reuse the one already running from the state dir."""
    began = time.monotonic()
    broker = running_broker(args.state_dir)
    if broker is not None:
        print(
            f"Reusing the Kafka broker already running from {broker.state_dir} (pid {broker.pid})"
        )
    else:
        if stop(args.state_dir):  # recorded process alive but not answering
            print("A recorded broker was running but not answering; it was stopped")
        broker = start(args.state_dir, timeout=args.timeout)
        print(
            f"Kafka {broker.kafka_version} broker started in {time.monotonic() - began:.1f} s "
            f"(pid {broker.pid})"
        )
    print(f"PLAINTEXT bootstrap: {broker.plaintext}")
    print(f"Connection details (with credentials): {broker.broker_json}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    """Stop the recorded broker, if any."""
    stopped = stop(args.state_dir)
    print("Kafka broker stopped" if stopped else "No running Kafka broker")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Report whether the recorded broker runs and answers; exit 1 if not."""
    try:
        broker = Broker.load(args.state_dir)
    except KafkaLocalError as exc:
        print(exc)
        return 1
    if running_broker(args.state_dir) is None:
        state = "running but not answering" if broker.is_running() else "not running"
        print(f"Kafka broker (pid {broker.pid}) is {state}; log: {broker.log_file}")
        return 1
    print(f"Kafka {broker.kafka_version} broker running (pid {broker.pid})")
    for listener in LISTENERS:
        print(f"  {listener:<15} {broker.address(listener)}")
    print(f"  log file        {broker.log_file}")
    print(f"  broker.json     {broker.broker_json}")
    return 0


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
    commands: dict[str, tuple[processes.Command, str]] = {
        "start": (_cmd_start, "start a broker (or reuse a running one)"),
        "stop": (_cmd_stop, "stop the broker"),
        "status": (_cmd_status, "show whether the broker runs; exit 1 if not"),
        "fetch": (_cmd_fetch, "only resolve the Kafka jars (and build the IAM handler)"),
    }
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
