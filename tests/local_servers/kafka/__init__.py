"""Run a real single-node Apache Kafka broker on loopback for tests, demos and benchmarks.

The broker is a genuine Apache Kafka (KRaft, combined broker+controller) started from
jars that Maven resolves into a per-user cache, so no Docker is needed, only Java 17+,
Maven, openssl and a JDK (``javac`` compiles the MSK IAM emulation once; see
:mod:`local_servers.kafka.iam`). Every start generates a fresh cluster, TLS material,
passwords and IAM test credentials.

Listeners (all on 127.0.0.1, free ports picked at start): ``PLAINTEXT``,
``SASL_PLAINTEXT`` and ``SASL_SSL`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``SSL``
(mutual TLS), ``BADHOST`` (a certificate for the wrong host) and ``IAM`` (Amazon MSK
IAM emulation); see :mod:`local_servers.kafka.config`. ``other_ca_file`` is a second,
unrelated CA that signed nothing, for wrong-CA tests. Everything a client needs is
written to ``<state_dir>/broker.json``.

Modules: ``jars`` (Maven and the JDK), ``tls`` (openssl), ``config`` (server
properties, JAAS, log4j2), ``iam`` (MSK IAM tokens, handler and probe), ``broker`` (the
:class:`Broker` value and client configs), ``lifecycle`` (start, readiness, stop),
``clients`` (topics and messages) and ``__main__`` (the command line).

Library use::

    broker = start(Path("/tmp/kafka"))
    broker.create_topic("orders", partitions=3)
    conf = broker.client_config("SASL_SSL", "SCRAM-SHA-512")
    mtls = broker.client_config("SSL")  # with the client certificate and key
    iam = {**broker.client_config("IAM"), "oauth_cb": broker.iam_oauth_cb()}
    broker.stop()

Command line::

    python -m local_servers.kafka start [--state-dir DIR] [--timeout SECONDS]
    python -m local_servers.kafka status [--state-dir DIR]
    python -m local_servers.kafka stop [--state-dir DIR]
    python -m local_servers.kafka fetch

The jar cache is ``$DBT_KAFKA_SYNC_CACHE/kafka-<version>/libs`` or, when the variable is
unset, ``~/.cache/dbt-kafka-sync/kafka-<version>/libs``.
"""

from local_servers.kafka.broker import DEFAULT_STOP_TIMEOUT, Broker, ClientConfig
from local_servers.kafka.clients import (
    Record,
    consume_all,
    consume_committed,
    create_topic,
    delete_topic,
    message_count,
)
from local_servers.kafka.config import LISTENERS, MECHANISMS
from local_servers.kafka.errors import KafkaLocalError
from local_servers.kafka.iam import IAM_REGION, iam_handler_jar, msk_iam_token
from local_servers.kafka.jars import KAFKA_VERSION, cache_dir, fetch_jars
from local_servers.kafka.lifecycle import (
    DEFAULT_START_TIMEOUT,
    relaunch,
    running_broker,
    start,
    stop,
    wait_until_ready,
)

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "IAM_REGION",
    "KAFKA_VERSION",
    "LISTENERS",
    "MECHANISMS",
    "Broker",
    "ClientConfig",
    "KafkaLocalError",
    "Record",
    "cache_dir",
    "consume_all",
    "consume_committed",
    "create_topic",
    "delete_topic",
    "fetch_jars",
    "iam_handler_jar",
    "message_count",
    "msk_iam_token",
    "relaunch",
    "running_broker",
    "start",
    "stop",
    "wait_until_ready",
]
