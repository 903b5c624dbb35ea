"""Alert receivers on loopback, in the test process: an HTTP server and an SMTP server.

The HTTP server records every request (path, headers, exact body) and answers 200, or
the status set for a path (a failing endpoint, which echoes the path back). The SMTP
server (aiosmtpd) requires STARTTLS, with a certificate of the throwaway test CA, and AUTH.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from local_servers.kafka.tls import make_tls
from local_servers.processes import LOOPBACK, free_ports


@dataclass(frozen=True)
class HttpRequest:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Records requests; `statuses` maps a path to the status to answer there (default 200)."""

    url: str
    requests: list[HttpRequest] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def received(self, path: str) -> list[HttpRequest]:
        """The requests made to one path, in order."""
        return [request for request in self.requests if request.path == path]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """An HTTP server on a free loopback port, serving from a thread until the block ends."""
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(HttpRequest(self.path, dict(self.headers), body))
            status = receiver.statuses.get(self.path, 200)
            # An error echoes the path, as real servers do: its secrets must be masked.
            answer = b"ok" if status < 300 else f"no such hook: {self.path}".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet test output

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)  # listening once constructed
    receiver = HttpReceiver(f"http://{LOOPBACK}:{server.server_address[1]}")
    # A short poll interval: shutdown() waits for the loop to notice it.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Mail:
    """One email as the SMTP server received it, with the login it was sent under."""

    login: str
    sender: str
    recipients: list[str]
    content: bytes


@dataclass
class SmtpReceiver:
    """Where the SMTP server listens, its login and CA, and the mails it received."""

    host: str
    port: int
    username: str
    password: str
    ca_file: Path
    mails: list[Mail] = field(default_factory=list)


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else ""
        mail = Mail(login, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        self.receiver.mails.append(mail)
        return "250 OK"


@contextmanager
def smtp_receiver(tls_dir: Path, username: str, password: str) -> Iterator[SmtpReceiver]:
    """An SMTP server requiring STARTTLS (certificate of a throwaway CA) and AUTH."""
    files = make_tls(tls_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
    [port] = free_ports(1)
    receiver = SmtpReceiver(LOOPBACK, port, username, password, files.ca_file)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        known = isinstance(data, LoginPassword) and (data.login, data.password) == (
            username.encode(),
            password.encode(),
        )
        # handled=False: the server answers (a 535 on a refusal), not this function.
        return AuthResult(success=known, handled=False, auth_data=data if known else None)

    controller = Controller(
        _Handler(receiver),
        hostname=LOOPBACK,
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()  # returns once the server answers
    try:
        yield receiver
    finally:
        controller.stop()
