"""Email over SMTP: STARTTLS, then AUTH, then one plain-text message per run."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from dbt_kafka_sync.alerts import text
from dbt_kafka_sync.alerts.decide import Alert, RunFacts
from dbt_kafka_sync.alerts.delivery import DeliveryFailed
from dbt_kafka_sync.config.alerts import EmailChannel

NAME = "the SMTP server"


def message(channel: EmailChannel, facts: RunFacts, alerts: Sequence[Alert]) -> EmailMessage:
    """The email: the title as its subject, the alerts as its body."""
    mail = EmailMessage()
    mail["Subject"] = text.title(facts, alerts)
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail.set_content(text.body(facts, alerts) + "\n")
    return mail


def _tls_context(channel: EmailChannel) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if channel.ca_file:
        context.load_verify_locations(cafile=channel.ca_file)
    context.check_hostname = channel.verify_hostname
    return context


def send(channel: EmailChannel, facts: RunFacts, alerts: Sequence[Alert], timeout: float) -> str:
    """Send the run's alerts as one email; return what was sent, for the summary."""
    what = f"{NAME} {channel.host}:{channel.port}"
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout) as smtp:
            if channel.starttls:
                smtp.starttls(context=_tls_context(channel))
            if channel.username is not None and channel.password is not None:
                smtp.login(channel.username, channel.password.get_secret_value())
            refused = smtp.send_message(message(channel, facts, alerts))
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(f"{what} refused the login: {_answer(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"{what} refused the email: {_answer(exc)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed(f"{what} refused every recipient: {sorted(exc.recipients)}") from None
    except TimeoutError:
        raise DeliveryFailed(f"{what} did not answer within {timeout:g} s") from None
    except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
        raise DeliveryFailed(f"{what} could not be reached: {exc.strerror or exc}") from None
    if refused:
        return f"sent to {len(channel.to) - len(refused)}, refused {sorted(refused)}"
    return f"{len(alerts)} alert(s) to {len(channel.to)} recipient(s)"


def _answer(exc: smtplib.SMTPResponseException) -> str:
    detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
    return f"{exc.smtp_code} {detail}".strip()
