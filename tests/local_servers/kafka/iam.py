"""Amazon MSK IAM emulation: tokens, the broker-side handler and the readiness probe.

The IAM listener is SASL_SSL with OAUTHBEARER, where the token is what AWS's signer
libraries produce (a base64url SigV4-presigned ``kafka-cluster:Connect`` URL). A small
Java callback handler (``java/MskIamCallbackHandler.java``, compiled here by
:func:`iam_handler_jar`) checks it against the per-start ``iam_credentials``,
recomputing the signature.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
import socket
import ssl
import string
import struct
import tempfile
import urllib.parse
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from local_servers import processes
from local_servers.kafka.errors import KafkaLocalError, with_log_tail
from local_servers.kafka.jars import fetch_jars, javac, run_tool

if TYPE_CHECKING:
    from local_servers.kafka.broker import Broker

IAM_MECHANISM = "OAUTHBEARER"
IAM_REGION = "us-east-1"
IAM_TOKEN_LIFETIME = 900  # seconds, as aws-msk-iam-sasl-signer-python uses
_IAM_SERVICE = "kafka-cluster"
_IAM_ACTION = "kafka-cluster:Connect"
_IAM_USER_AGENT = "dbt-kafka-sync-kafka-local"
IAM_HANDLER_CLASS = "kafkalocal.MskIamCallbackHandler"
_IAM_HANDLER_SOURCE = Path(__file__).resolve().parent / "java/MskIamCallbackHandler.java"
_OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_JAVA_RELEASE = "17"
_EXT_DIR = "kafka-local-ext"
_IAM_KEY_ID_PREFIX = "AKIATEST"


def new_iam_credentials() -> dict[str, str]:
    """Create per-start AWS-style test credentials for the IAM listener."""
    alphabet = string.ascii_uppercase + "234567"  # what real access key ids are made of
    key_id = _IAM_KEY_ID_PREFIX + "".join(secrets.choice(alphabet) for _ in range(12))
    # 40 base64 characters like a real secret; '+' and '/' exercise encoding paths.
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    return {"access_key_id": key_id, "secret_access_key": secret}


def iam_jaas(credentials: dict[str, str]) -> str:
    """Build the IAM listener's JAAS entry: the handler reads the expected credentials."""
    return (
        f"{_OAUTHBEARER_LOGIN_MODULE} required"
        f' accessKeyId="{credentials["access_key_id"]}"'
        f' secretAccessKey="{credentials["secret_access_key"]}";'
    )


def iam_handler_jar(libs: Path | None = None) -> Path:
    """Compile the MSK IAM callback handler against the Kafka jars, once per source version.

    The jar is cached next to the Kafka jars, named by a hash of the Java source, so only
    the first start after the source changes runs ``javac``.

    Args:
        libs: Kafka jar directory (defaults to :func:`fetch_jars`).

    Returns:
        The jar holding ``kafkalocal.MskIamCallbackHandler``.

    Raises:
        KafkaLocalError: If the source is missing, or ``javac`` is missing or fails.
    """
    libs = libs or fetch_jars()
    try:
        source = _IAM_HANDLER_SOURCE.read_bytes()
    except OSError as exc:
        raise KafkaLocalError(f"cannot read the MSK IAM handler source: {exc}") from exc
    digest = hashlib.sha256(source + f"\0javac --release {_JAVA_RELEASE}".encode()).hexdigest()
    ext_dir = libs.parent / _EXT_DIR
    jar = ext_dir / f"msk-iam-handler-{digest[:16]}.jar"
    if jar.is_file():
        return jar
    ext_dir.mkdir(parents=True, exist_ok=True)
    with processes.file_lock(ext_dir / ".lock"):
        if jar.is_file():  # another process compiled it while we waited
            return jar
        with tempfile.TemporaryDirectory(dir=ext_dir, prefix="build-") as build:
            classes = Path(build) / "classes"
            cmd = [
                javac(),
                "--release",
                _JAVA_RELEASE,
                "-nowarn",
                "-encoding",
                "UTF-8",
                "-cp",
                f"{libs}/*",
                "-d",
                str(classes),
                str(_IAM_HANDLER_SOURCE),
            ]
            run_tool(cmd, f"javac failed compiling {_IAM_HANDLER_SOURCE}", "javac")
            partial = Path(build) / jar.name
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
                for path in sorted(classes.rglob("*.class")):
                    archive.write(path, path.relative_to(classes).as_posix())
            partial.replace(jar)
    return jar


def msk_iam_token(
    access_key_id: str,
    secret_access_key: str,
    region: str = IAM_REGION,
    *,
    session_token: str | None = None,
    signed_at: datetime.datetime | None = None,
    expires: int = IAM_TOKEN_LIFETIME,
    user_agent: str = _IAM_USER_AGENT,
) -> tuple[str, int]:
    """Build an Amazon MSK IAM auth token without AWS libraries.

    Produces what ``aws-msk-iam-sasl-signer-python`` does (byte for byte, given its
    user agent and the same signing time): the base64url encoding, without padding, of a
    SigV4-presigned ``https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect``
    URL. The broker's readiness check uses it; tests can use it to craft expired,
    future-dated or wrongly signed tokens.

    Args:
        access_key_id: AWS access key id.
        secret_access_key: AWS secret access key.
        region: AWS region to sign for.
        session_token: Session token of temporary credentials, if any.
        signed_at: Signing time (default now; a naive datetime is local time).
        expires: Token lifetime in seconds (``X-Amz-Expires``).
        user_agent: The unsigned ``User-Agent`` query parameter.

    Returns:
        ``(token, expiry in milliseconds since the epoch)``, like the AWS library.
    """
    when = (signed_at or datetime.datetime.now(datetime.timezone.utc)).astimezone(
        datetime.timezone.utc
    )
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/{_IAM_SERVICE}/aws4_request"
    params = {
        "Action": _IAM_ACTION,
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    if session_token:
        params["X-Amz-Security-Token"] = session_token
    encoded = [
        (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
        for k, v in params.items()
    ]
    host = f"kafka.{region}.amazonaws.com"
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            "&".join(f"{k}={v}" for k, v in sorted(encoded)),
            f"host:{host}",
            "",
            "host",
            hashlib.sha256(b"").hexdigest(),  # botocore signs presigned GETs' empty body
        ]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret_access_key}".encode()
    for part in (amz_date[:8], region, _IAM_SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in encoded)
    user_agent_param = urllib.parse.urlencode({"User-Agent": user_agent})
    url = f"https://{host}/?{query}&X-Amz-Signature={signature}&{user_agent_param}"
    token = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    signed = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    expiry = signed.replace(tzinfo=datetime.timezone.utc).timestamp() + expires
    return token, int(expiry) * 1000


# ------------------------------------------------------------------------ readiness probe


_SASL_HANDSHAKE_API = 17
_SASL_AUTHENTICATE_API = 36


def _kafka_call(sock: ssl.SSLSocket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after its header."""
    client_id = b"kafka-local-probe"
    header = struct.pack(">hhih", api_key, version, api_key, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    response = _recv_exactly(sock, size)
    if struct.unpack_from(">i", response)[0] != api_key:  # the correlation id
        raise ConnectionError("unexpected Kafka response")
    return response[4:]


def _recv_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def iam_authenticates(broker: Broker, timeout: float) -> bool:
    """Authenticate once on the IAM listener with a fresh token, speaking Kafka's protocol.

    librdkafka takes a second longer than needed per OAUTHBEARER client (it drops the
    bootstrap connection and reconnects on its next one-second tick), so this probe
    sends SaslHandshake and SaslAuthenticate (v1) itself: about 10 ms.

    Returns:
        True once authenticated.

    Raises:
        OSError: If the listener cannot be reached (retried by the caller).
        KafkaLocalError: If the broker rejects the token (the handler is broken).
    """
    host, port = broker.iam.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    token, _ = msk_iam_token(
        broker.iam_credentials["access_key_id"], broker.iam_credentials["secret_access_key"]
    )
    with (
        socket.create_connection((host, int(port)), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        mechanism = IAM_MECHANISM.encode()
        response = _kafka_call(
            sock, _SASL_HANDSHAKE_API, 1, struct.pack(">h", len(mechanism)) + mechanism
        )
        (error,) = struct.unpack_from(">h", response)
        rejection = f"SaslHandshake error code {error}" if error else ""
        if not rejection:
            message = b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"
            response = _kafka_call(
                sock, _SASL_AUTHENTICATE_API, 1, struct.pack(">i", len(message)) + message
            )
            error, length = struct.unpack_from(">hh", response)
            offset = 4 + max(length, 0)
            (challenge_length,) = struct.unpack_from(">i", response, offset)
            # On success the server's reply is empty; a rejection is a JSON error "challenge".
            challenge = response[offset + 4 : offset + 4 + max(challenge_length, 0)]
            rejection = challenge.decode(errors="replace") or (
                f"error code {error}" if error else ""
            )
    if rejection:
        raise KafkaLocalError(
            with_log_tail(f"the IAM listener rejected a valid token: {rejection}", broker.log_file)
        )
    return True
