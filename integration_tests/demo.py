"""The quickstart: a local broker, `dbt build`, `dbt-kafka-sync`, and the messages read back.

Run it with `make demo` from the repository root. The broker keeps running afterwards
(`make broker-stop` stops it), so you can edit a seed, rerun and watch what is published.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import kafka_local  # noqa: E402  (the test harness's broker, shared with the demo)

TOPICS = tuple(
    f"demo.{name}"
    for name in (
        "customers",
        "orders",
        "customer_profiles",
        "customer_events",
        "order_notifications",
        "tricky_columns",
        "tricky_column",
        "tricky_template",
    )
)
STATE_DIR = HERE.parent / ".kafka-local"


def main() -> int:
    """Run the demo end to end; return the exit code of dbt-kafka-sync."""
    broker = kafka_local.running_broker(STATE_DIR) or kafka_local.start(STATE_DIR)
    for topic in TOPICS:
        broker.create_topic(topic, partitions=1, exist_ok=True)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.plaintext,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(HERE),
    }
    bin_dir = Path(sys.executable).parent
    for command in (["dbt", "deps"], ["dbt", "build"]):
        _step(command, [str(bin_dir / command[0]), *command[1:]], env)
    sync = _step(["dbt-kafka-sync"], [str(bin_dir / "dbt-kafka-sync")], env, check=False)
    for topic in TOPICS:
        _print_topic(broker, topic)
    return sync.returncode


def _step(
    title: list[str], command: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    print(f"\n$ {' '.join(title)}", flush=True)
    result = subprocess.run(command, cwd=HERE, env=env, check=False)
    if check and result.returncode != 0:
        sys.exit(result.returncode)
    return result


def _print_topic(broker: kafka_local.Broker, topic: str) -> None:
    messages = broker.consume_all(topic)
    print(f"\n== {topic}: {len(messages)} messages on {broker.plaintext}")
    for message in messages:
        print(f"key={message.key}  value={message.value}")


if __name__ == "__main__":
    sys.exit(main())
