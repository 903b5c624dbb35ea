"""Connections: SASL mechanisms, TLS, mTLS, AWS IAM; failures; secrets never shown."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import local_servers.kafka as local_kafka
import pytest
from harness import Kafka, Project

MECHANISMS = ("plain", "scram-sha-256", "scram-sha-512")


def local_broker(kafka: Kafka) -> local_kafka.Broker:
    if kafka.broker is None:
        pytest.skip("needs the local test broker's SASL, TLS and IAM listeners")
    return kafka.broker


def sasl_output(
    broker: local_kafka.Broker, mechanism: str, tls: bool, password_var: str = "TEST_PASSWORD"
) -> dict[str, Any]:
    """A kafka_sync output for a SASL listener; the password comes from the environment."""
    output: dict[str, Any] = {
        "bootstrap_servers": broker.sasl_ssl if tls else broker.sasl_plaintext,
        "auth": {
            "mechanism": mechanism,
            "username": broker.users[mechanism]["username"],
            "password": f"{{{{ env_var('{password_var}') }}}}",
        },
    }
    if tls:
        output["tls"] = {"ca_file": str(broker.ca_file)}
    return output


def target_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def sync_orders(
    project: Project,
    output: dict[str, Any],
    env: dict[str, str] | None = None,
    *extra: str,
) -> Any:
    name = target_name()
    project.add_kafka_output(name, output)
    return project.sync("--select", "orders", "--target", name, *extra, env=env)


@pytest.mark.parametrize("tls", [False, True], ids=["sasl-plaintext", "sasl-ssl"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_publish_over_each_sasl_mechanism(
    built_project: Project, kafka: Kafka, mechanism: str, tls: bool
) -> None:
    broker = local_broker(kafka)
    topic = built_project.prefix + "orders"
    before = local_kafka.message_count(kafka.bootstrap_servers, topic)
    password = broker.users[mechanism]["password"]

    result = sync_orders(
        built_project, sasl_output(broker, mechanism, tls), {"TEST_PASSWORD": password}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 delivered, 0 failed" in result.stdout
    assert local_kafka.message_count(kafka.bootstrap_servers, topic) == before + 4


def test_tls_with_inline_ca_and_localhost(built_project: Project, kafka: Kafka) -> None:
    broker = local_broker(kafka)
    output = sasl_output(broker, "scram-sha-256", tls=True)
    output["bootstrap_servers"] = "localhost:" + broker.sasl_ssl.rsplit(":", 1)[1]
    output["tls"] = {"ca_pem": Path(broker.ca_file).read_text()}

    result = sync_orders(
        built_project, output, {"TEST_PASSWORD": broker.users["scram-sha-256"]["password"]}
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_mutual_tls_with_client_certificate(built_project: Project, kafka: Kafka) -> None:
    broker = local_broker(kafka)
    output = {
        "bootstrap_servers": broker.ssl,
        "tls": {
            "ca_file": str(broker.ca_file),
            "cert_file": str(broker.client_cert_file),
            "key_pem": "{{ env_var('TEST_KEY') }}",
        },
    }
    key = Path(broker.client_key_file).read_text()

    result = sync_orders(built_project, output, {"TEST_KEY": key})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 delivered" in result.stdout


def test_verify_hostname_off_is_allowed_with_a_warning(
    built_project: Project, kafka: Kafka
) -> None:
    broker = local_broker(kafka)
    output = sasl_output(broker, "scram-sha-512", tls=True)
    output["bootstrap_servers"] = broker.bad_host
    output["tls"]["verify_hostname"] = False

    result = sync_orders(
        built_project, output, {"TEST_PASSWORD": broker.users["scram-sha-512"]["password"]}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "tls.verify_hostname is false" in result.stderr


def aws_output(broker: local_kafka.Broker, **auth: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.iam,
        "auth": {"mechanism": "aws-iam", "region": "eu-west-1", **auth},
        "tls": {"ca_file": str(broker.ca_file)},
    }


def no_aws_environment(tmp_path: Path) -> dict[str, str]:
    """Keep the machine's own AWS settings out of a test."""
    return {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
    }


def test_aws_iam_with_explicit_keys(built_project: Project, kafka: Kafka, tmp_path: Path) -> None:
    broker = local_broker(kafka)
    keys = broker.iam_credentials
    output = aws_output(
        broker,
        access_key_id=keys["access_key_id"],
        secret_access_key="{{ env_var('TEST_AWS_SECRET') }}",
        authorization_identity="some-role",
    )
    env = {**no_aws_environment(tmp_path), "TEST_AWS_SECRET": keys["secret_access_key"]}

    result = sync_orders(built_project, output, env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 delivered" in result.stdout


def test_aws_iam_from_the_default_chain_and_a_named_profile(
    built_project: Project, kafka: Kafka, tmp_path: Path
) -> None:
    broker = local_broker(kafka)
    keys = broker.iam_credentials
    from_env = {
        **no_aws_environment(tmp_path),
        "AWS_ACCESS_KEY_ID": keys["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["secret_access_key"],
    }
    assert sync_orders(built_project, aws_output(broker), from_env).returncode == 0

    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[msk]\naws_access_key_id = {keys['access_key_id']}\n"
        f"aws_secret_access_key = {keys['secret_access_key']}\n"
    )
    from_profile = {**no_aws_environment(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    result = sync_orders(built_project, aws_output(broker, profile="msk"), from_profile)
    assert result.returncode == 0, result.stdout + result.stderr


SECRET = f"S3cr3t-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("wrong-password", "Authentication failed", id="wrong-password"),
        pytest.param("unknown-user", "Authentication failed", id="unknown-user"),
        pytest.param("wrong-ca", "certificate verify failed", id="wrong-ca"),
        pytest.param("other-host", "certificate verify failed", id="certificate-for-other-host"),
        pytest.param("unreachable", "Connection refused", id="unreachable"),
        pytest.param("aws-wrong-secret", "SASL authentication error", id="aws-wrong-secret"),
    ],
)
def test_connection_failures_are_quick_clear_and_change_nothing(
    built_project: Project, kafka: Kafka, tmp_path: Path, case: str, expected: str
) -> None:
    broker = local_broker(kafka)
    output = sasl_output(broker, "scram-sha-512", tls=True)
    env = {"TEST_PASSWORD": SECRET}
    if case == "unknown-user":
        output["auth"]["username"] = "nobody"
    elif case == "wrong-ca":
        env["TEST_PASSWORD"] = broker.users["scram-sha-512"]["password"]
        output["tls"]["ca_file"] = str(broker.other_ca_file)
    elif case == "other-host":
        env["TEST_PASSWORD"] = broker.users["scram-sha-512"]["password"]
        output["bootstrap_servers"] = broker.bad_host
    elif case == "unreachable":
        output["bootstrap_servers"] = "127.0.0.1:1"
    elif case == "aws-wrong-secret":
        output = aws_output(
            broker,
            access_key_id=broker.iam_credentials["access_key_id"],
            secret_access_key="{{ env_var('TEST_PASSWORD') }}",
        )
        env.update(no_aws_environment(tmp_path))
    state = built_project.path / ".dbt_kafka_sync" / f"{case}.duckdb"

    started = time.monotonic()
    result = sync_orders(built_project, output, env, "--state-path", str(state))
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 30
    assert "cannot connect to Kafka at" in result.stderr
    assert expected.lower() in result.stderr.lower()
    assert "hint: check" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not state.exists()  # no state change


def test_secrets_never_appear_anywhere(
    built_project: Project, kafka: Kafka, tmp_path: Path
) -> None:
    broker = local_broker(kafka)
    password = broker.users["scram-sha-512"]["password"]
    name = target_name()
    built_project.add_kafka_output(
        name,
        {
            **sasl_output(broker, "scram-sha-512", tls=True),
            "producer": {"debug": "security,broker,protocol,msg"},  # librdkafka's own debug log
        },
    )
    env = {"TEST_PASSWORD": password}
    state = tmp_path / "state.duckdb"
    common = ("--target", name, "--state-path", str(state))

    outputs = [
        built_project.sync("--select", "orders", "--log-level", "debug", *common, env=env),
        built_project.sync("plan", "--select", "orders", *common, env=env),
        built_project.sync("debug", "--select", "orders", *common, env=env),
        built_project.sync("runs", *common, env=env),
        built_project.sync("--help", env=env),
    ]
    run_id = re.search(r"show ([\w-]+)", outputs[0].stdout)
    assert run_id, outputs[0].stdout + outputs[0].stderr
    outputs.append(built_project.sync("show", run_id.group(1), *common, env=env))

    assert outputs[0].returncode == 0, outputs[0].stderr
    assert "sasl" in outputs[0].stderr.lower()  # the debug log really was on
    assert "password: '**********'" in outputs[2].stdout
    for result in outputs:
        assert password not in result.stdout + result.stderr
    assert password.encode() not in state.read_bytes()
    for wal in tmp_path.glob("state.duckdb*"):
        assert password.encode() not in wal.read_bytes()


def test_aws_secrets_stay_out_of_debug_logs(
    built_project: Project, kafka: Kafka, tmp_path: Path
) -> None:
    broker = local_broker(kafka)
    keys = broker.iam_credentials
    session_token = f"SessionToken{uuid.uuid4().hex}"
    output = aws_output(
        broker,
        access_key_id=keys["access_key_id"],
        secret_access_key="{{ env_var('TEST_AWS_SECRET') }}",
        session_token="{{ env_var('TEST_AWS_TOKEN') }}",
    )
    output["producer"] = {"debug": "security"}  # librdkafka's own debug log too
    env = {
        **no_aws_environment(tmp_path),
        "TEST_AWS_SECRET": keys["secret_access_key"],
        "TEST_AWS_TOKEN": session_token,
    }

    result = sync_orders(built_project, output, env, "--log-level", "debug")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEBUG dbt_kafka_sync.librdkafka" in result.stderr
    for secret in (keys["secret_access_key"], session_token):
        assert secret not in result.stdout + result.stderr
