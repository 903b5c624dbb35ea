"""The profile's auth and tls blocks, as the settings handed to librdkafka."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbt_kafka_sync.dbt.profiles import kafka_target
from dbt_kafka_sync.debug import masked_profile
from dbt_kafka_sync.errors import ProfileError
from dbt_kafka_sync.kafka.security import describe, security_settings

PATH = Path("profiles.yml")


def target(**output: Any) -> Any:
    profiles = {
        "kafka_sync": {
            "target": "dev",
            "outputs": {"dev": {"bootstrap_servers": "b1:9093", **output}},
        }
    }
    return kafka_target(profiles, None, PATH)[1]


def test_no_auth_no_tls_is_plaintext(tmp_path: Path) -> None:
    assert security_settings(target(), tmp_path) == {"security.protocol": "PLAINTEXT"}


def test_scram_over_tls_with_a_ca_file_relative_to_the_project(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("pem")
    kafka = target(
        auth={"mechanism": "scram-sha-512", "username": "u", "password": "p"},
        tls={"ca_file": "certs/ca.pem"},
    )
    assert security_settings(kafka, tmp_path) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "ssl.ca.location": str(tmp_path / "certs" / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert describe(kafka) == "b1:9093 over SASL_SSL/SCRAM-SHA-512"


def test_tls_true_uses_the_system_cas_and_mtls_pems(tmp_path: Path) -> None:
    assert security_settings(target(tls=True), tmp_path) == {
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
    }
    mtls = target(
        tls={
            "ca_pem": "CA",
            "cert_pem": "CERT",
            "key_pem": "KEY",
            "key_password": "kp",
            "verify_hostname": False,
        }
    )
    settings = security_settings(mtls, tmp_path)
    assert settings["ssl.key.pem"] == "KEY" and settings["ssl.key.password"] == "kp"
    assert settings["ssl.endpoint.identification.algorithm"] == "none"


def test_aws_iam_is_oauthbearer_over_tls_with_a_token_callback(tmp_path: Path) -> None:
    kafka = target(auth={"mechanism": "aws-iam", "region": "us-east-1"})
    settings = security_settings(kafka, tmp_path)
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "OAUTHBEARER"
    assert callable(settings["oauth_cb"])
    assert describe(kafka) == "b1:9093 over SASL_SSL/OAUTHBEARER (aws-iam)"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(
            {"auth": {"mechanism": "scram-sha-256", "username": "u"}},
            "needs `username` and `password`",
            id="no-password",
        ),
        pytest.param({"auth": {"mechanism": "aws-iam"}}, "needs `region`", id="no-region"),
        pytest.param(
            {"auth": {"mechanism": "gssapi"}},
            "kafka_sync.outputs.dev.auth.mechanism",
            id="unknown-mechanism",
        ),
        pytest.param(
            {"auth": {"mechanism": "aws-iam", "region": "r", "access_key_id": "a"}},
            "give both `access_key_id` and `secret_access_key`",
            id="half-keys",
        ),
        pytest.param(
            {"tls": {"ca_file": "a", "ca_pem": "b"}}, "give `ca_file` or `ca_pem`", id="two-cas"
        ),
        pytest.param({"tls": {"cert_pem": "c"}}, "needs its key", id="cert-without-key"),
        pytest.param({"tls": {"cafile": "x"}}, "did you mean 'ca_file'?", id="typo"),
        pytest.param(
            {"producer": {"sasl.password": "x"}},
            "belong in the auth or tls block",
            id="secret-in-producer",
        ),
    ],
)
def test_invalid_connection_settings(output: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProfileError) as raised:
        target(**output)
    assert expected in raised.value.render()


def test_missing_tls_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"TLS file certs/none\.pem not found"):
        security_settings(target(tls={"ca_file": "certs/none.pem"}), tmp_path)


def test_secrets_are_masked_in_the_shown_profile() -> None:
    kafka = target(
        auth={"mechanism": "plain", "username": "u", "password": "hunter2"},
        tls={"key_pem": "PRIVATE", "cert_pem": "CERT"},
    )
    shown = masked_profile(kafka)
    assert shown["auth"]["password"] == "**********"
    assert shown["tls"]["key_pem"] == "**********"
    assert "hunter2" not in repr(kafka) and "PRIVATE" not in str(kafka)
