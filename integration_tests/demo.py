"""The quickstart: a local broker, `dbt build`, `dbt-kafka-sync`, the messages read back, a report.

Run it with `make demo` from the repository root. The broker keeps running afterwards
(`make broker-stop` stops it), so you can edit a seed, rerun and watch what is published.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import local_servers.kafka as local_kafka  # the test harness's broker, shared with the demo

HERE = Path(__file__).resolve().parent
STATE_DIR = HERE.parent / ".kafka-local"


def main() -> int:
    """Run the demo end to end; return the exit code of dbt-kafka-sync."""
    broker = local_kafka.running_broker(STATE_DIR) or local_kafka.start(STATE_DIR)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.plaintext,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(HERE),
    }
    bin_dir = Path(sys.executable).parent
    for command in (["dbt", "deps"], ["dbt", "build"]):
        _step(command, [str(bin_dir / command[0]), *command[1:]], env)
    topics = _topics()
    for topic in topics:  # dbt-kafka-sync never creates topics: the demo does
        broker.create_topic(topic, partitions=1, exist_ok=True)
    sync = _step(["dbt-kafka-sync"], [str(bin_dir / "dbt-kafka-sync")], env, check=False)
    for topic in topics:
        _print_topic(broker, topic)
    _step(["dbt-kafka-sync", "report"], [str(bin_dir / "dbt-kafka-sync"), "report"], env)
    return sync.returncode


def _topics() -> list[str]:
    """The topics the example project's syncs publish to, read from its manifest."""
    from dbt_kafka_sync.dbt.manifest import load_manifest, synced_models

    models = synced_models(load_manifest(HERE / "target" / "manifest.json"))
    return sorted({sync.topic for model in models for sync in model.syncs if sync.topic})


def _step(
    title: list[str], command: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    print(f"\n$ {' '.join(title)}", flush=True)
    result = subprocess.run(command, cwd=HERE, env=env, check=False)
    if check and result.returncode != 0:
        sys.exit(result.returncode)
    return result


def _print_topic(broker: local_kafka.Broker, topic: str) -> None:
    messages = broker.consume_all(topic)
    print(f"\n== {topic}: {len(messages)} messages on {broker.plaintext}")
    for message in messages:
        print(f"key={message.key}  value={message.value}")


if __name__ == "__main__":
    sys.exit(main())
