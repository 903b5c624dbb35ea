"""One JSON POST over urllib, for the HTTP channels; its errors never show the URL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from dbt_kafka_sync.alerts.delivery import DeliveryFailed

MAX_ANSWER_CHARS = 200  # of an error response's body, quoted in the failure


def json_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post(
    url: str, body: bytes, what: str, timeout: float, headers: Mapping[str, str] | None = None
) -> None:
    """POST `body` as JSON; a non-2xx answer, no answer or a timeout raises DeliveryFailed.

    Args:
        url: where to post (a secret for some channels: it appears in no message).
        body: the JSON bytes.
        what: how messages name the endpoint, e.g. "the Slack webhook".
        timeout: seconds to connect and to wait for each read.
        headers: extra headers (e.g. a signature).
    """
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s) only
            response.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read(MAX_ANSWER_CHARS).decode("utf-8", "replace").strip()
        raise DeliveryFailed(
            f"{what} answered HTTP {exc.code} {exc.reason}" + (f": {answer}" if answer else "")
        ) from None
    except TimeoutError:
        raise DeliveryFailed(f"{what} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryFailed(f"{what} did not answer within {timeout:g} s") from None
        raise DeliveryFailed(f"{what} could not be reached: {_describe(reason)}") from None
    except OSError as exc:  # e.g. the connection reset while reading the answer
        raise DeliveryFailed(f"{what} could not be reached: {_describe(exc)}") from None
    except ValueError:  # http.client.InvalidURL and the like: their text quotes the URL
        raise DeliveryFailed(f"{what} has a URL that cannot be used") from None


def _describe(reason: object) -> str:
    # An OSError's strerror, not its str(): that may quote a file name or address.
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
