"""Per-start TLS material made with openssl: a throwaway CA and every certificate.

The server certificate is valid for localhost and 127.0.0.1; a second certificate for the
same key is valid only for ``wrong-host.invalid`` (the BADHOST listener); a client
certificate serves mutual TLS; an unrelated CA signed nothing (for wrong-CA tests).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local_servers.kafka.errors import KafkaLocalError

CLIENT_CERT_CN = "dbt-kafka-sync-test-client"
BAD_HOST_NAME = "wrong-host.invalid"

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[bad_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong-host.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
_RSA_KEY = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
# EC keys are generated instantly (RSA takes 0.2-0.7 s each), so the additions use them.
_EC_KEY = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the per-start TLS material (all inside the state's ``tls`` directory)."""

    ca_file: Path  # the CA that signed every certificate below
    keystore: Path  # server key + localhost/127.0.0.1 certificate + CA, for Kafka
    bad_host_keystore: Path  # server key + certificate valid only for wrong-host.invalid
    client_cert: Path
    client_key: Path  # unencrypted PKCS#8
    client_keystore: Path  # client key + certificate + CA, for Java clients
    other_ca_file: Path  # an unrelated CA that signed nothing


def tls_files(tls_dir: Path) -> TlsFiles:
    """Name the TLS files of a state directory (they are created by :func:`make_tls`)."""
    return TlsFiles(
        ca_file=tls_dir / "ca.pem",
        keystore=tls_dir / "server-keystore.pem",
        bad_host_keystore=tls_dir / "bad-host-keystore.pem",
        client_cert=tls_dir / "client.pem",
        client_key=tls_dir / "client.key",
        client_keystore=tls_dir / "client-keystore.pem",
        other_ca_file=tls_dir / "other_ca.pem",
    )


def _openssl_cmd(template: str, values: dict[str, str | Path]) -> list[str]:
    """Build an openssl command line.

    Args:
        template: Space-separated arguments; ``{name}`` tokens are filled from
            ``values`` after splitting, so paths containing spaces stay intact.
        values: Substitutions for the template.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaLocalError("openssl is not on PATH; it is needed for the TLS listeners")
    return [openssl, *(token.format(**values) for token in template.split())]


def _openssl(template: str, **values: str | Path) -> None:
    """Run one openssl command (see :func:`_openssl_cmd`), raising with its output on failure."""
    _openssl_parallel([(template, values)])


def _openssl_parallel(commands: Sequence[tuple[str, dict[str, str | Path]]]) -> None:
    """Run openssl commands concurrently, raising with the output of the first failure."""
    cmds = [_openssl_cmd(template, values) for template, values in commands]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in cmds
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    for cmd, proc, output in zip(cmds, procs, outputs, strict=True):
        if proc.returncode != 0:
            raise KafkaLocalError(f"openssl failed: {' '.join(cmd)}\n{output}")


def make_tls(tls_dir: Path) -> TlsFiles:
    """Create a throwaway CA and the certificates of all TLS listeners and clients.

    * a localhost/127.0.0.1 server certificate (SASL_SSL, SSL and IAM listeners);
    * a certificate for the same server key valid only for ``wrong-host.invalid``
      (BADHOST listener);
    * a client certificate (CN=dbt-kafka-sync-test-client) for the mutual-TLS listener;
    * an unrelated self-signed CA that signed nothing.

    Private keys are unencrypted PKCS#8 (genpkey's only output form), the one unencrypted
    key form Kafka's PEM keystore reads.

    Args:
        tls_dir: Directory to create and write keys and certificates into.

    Returns:
        The paths of the material.
    """
    files = tls_files(tls_dir)
    tls_dir.mkdir(mode=0o700, parents=True)
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF, encoding="utf-8")
    ca_key, ca_pem = tls_dir / "ca.key", files.ca_file
    key, csr, cert = tls_dir / "server.key", tls_dir / "server.csr", tls_dir / "server.pem"
    client_csr = tls_dir / "client.csr"
    other_ca_key = tls_dir / "other_ca.key"
    # RSA key generation is slow and random in length: generate all keys side by side.
    _openssl_parallel(
        [
            (f"genpkey {_RSA_KEY} -out {{out}}", {"out": ca_key}),
            (f"genpkey {_RSA_KEY} -out {{out}}", {"out": key}),
            (f"genpkey {_EC_KEY} -out {{out}}", {"out": files.client_key}),
            (f"genpkey {_EC_KEY} -out {{out}}", {"out": other_ca_key}),
        ]
    )
    _openssl(
        "req -config {cnf} -x509 -new -key {key} -sha256 -days 3650 -subj {subj}"
        " -extensions ca_ext -out {out}",
        cnf=cnf, key=ca_key, subj="/CN=dbt-kafka-sync local test CA", out=ca_pem,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -new -key {key} -subj /CN=localhost -out {out}",
        cnf=cnf, key=key, out=csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions server_ext -out {out}",
        csr=csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf, out=cert,
    )  # fmt: skip
    bad_csr, bad_cert = tls_dir / "bad-host.csr", tls_dir / "bad-host.pem"
    _openssl(
        "req -config {cnf} -new -key {key} -subj {subj} -out {out}",
        cnf=cnf, key=key, subj=f"/CN={BAD_HOST_NAME}", out=bad_csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions bad_host_ext -out {out}",
        csr=bad_csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf,
        out=bad_cert,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -new -key {key} -subj {subj} -out {out}",
        cnf=cnf, key=files.client_key, subj=f"/CN={CLIENT_CERT_CN}", out=client_csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions client_ext -out {out}",
        csr=client_csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf,
        out=files.client_cert,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -x509 -new -key {key} -sha256 -days 3650 -subj {subj}"
        " -extensions ca_ext -out {out}",
        cnf=cnf, key=other_ca_key, subj="/CN=dbt-kafka-sync unrelated test CA",
        out=files.other_ca_file,
    )  # fmt: skip
    ca_bytes = ca_pem.read_bytes()
    files.keystore.write_bytes(key.read_bytes() + cert.read_bytes() + ca_bytes)
    files.bad_host_keystore.write_bytes(key.read_bytes() + bad_cert.read_bytes() + ca_bytes)
    client_key_bytes = files.client_key.read_bytes()
    files.client_keystore.write_bytes(client_key_bytes + files.client_cert.read_bytes() + ca_bytes)
    secrets_ = (ca_key, key, other_ca_key, files.client_key)
    for secret in (*secrets_, files.keystore, files.bad_host_keystore, files.client_keystore):
        secret.chmod(0o600)
    return files
