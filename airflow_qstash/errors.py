"""
The provider's exception types and the redaction every error text goes through.

Nothing here knows about transports. Every message the provider builds from a server answer, a
``Location`` header or a connection value passes through :func:`redact` first, so the token cannot
reach a log line, an exception or a trigger event (stored in the metadata database), not even when a
server echoes it back with line breaks inside.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

REDACTED = "***"
#: A credential after an auth scheme, whatever it is: a server may echo a header back.
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[^\s\"',;}\]&]+")
#: Shortest piece of the token that is still redacted when it appears alone (a truncated echo).
_MIN_FRAGMENT = 12
#: What a server may put between the token's characters when it echoes it back mangled.
_NOISE = r"(?:\s|\\[nrt]|%0[aAdD])*"


def redact(text: str, secret: str | None = None) -> str:
    """
    ``text`` without the secret: the whole token, the token with line breaks or escapes inside, any
    piece of it of :data:`_MIN_FRAGMENT` characters or more, and any ``Bearer <anything>``.

    :param text: a message about to be raised or logged.
    :param secret: the connection's token, if known.
    """
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if not secret:
        return text
    mangled = _NOISE.join(re.escape(char) for char in secret)
    text = re.sub(mangled, REDACTED, text)
    if len(secret) < _MIN_FRAGMENT:
        return text
    covered = bytearray(len(text))
    for start in range(len(secret) - _MIN_FRAGMENT + 1):
        piece = secret[start : start + _MIN_FRAGMENT]
        found = text.find(piece)
        while found != -1:
            covered[found : found + _MIN_FRAGMENT] = b"\x01" * _MIN_FRAGMENT
            found = text.find(piece, found + 1)
    if not any(covered):
        return text
    out, index = [], 0
    while index < len(text):
        if covered[index]:
            while index < len(text) and covered[index]:
                index += 1
            out.append(REDACTED)
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


class QStashError(AirflowException):
    """Base class of the errors this provider raises after talking to QStash."""


class QStashAPIError(QStashError):
    """
    QStash answered with an error status (or an answer the provider cannot read).

    :param http_status: the HTTP status, if there was an answer.
    :param api_error: the ``error`` text of QStash's JSON answer (or the start of a non-JSON body), redacted.
    """

    def __init__(self, message: str, *, http_status: int | None = None, api_error: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.api_error = api_error


class QStashRetryableError(QStashAPIError):
    """A failure worth retrying: 429, 5xx, or a network error; ``wait`` is what QStash asked for, if it did."""

    def __init__(self, message: str, *, wait: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.wait = wait


class QStashTransportError(QStashRetryableError):
    """No answer: the connection failed, was dropped, or the attempt's deadline passed."""


class QStashActionConflict(QStashAPIError):
    """
    A filter cancel answered 412, or 429 without rate-limit headers: an identical bulk action is
    (probably) already running. Not retried as such: the caller looks the action up and follows it.
    """


class QStashConnectionError(QStashError, AirflowFailException, ValueError):
    """
    The Airflow connection is missing something or holds a value the hook cannot use.

    An ``AirflowFailException``: retrying the task cannot fix a connection, so Airflow does not retry it.
    """


__all__ = [
    "REDACTED",
    "QStashAPIError",
    "QStashActionConflict",
    "QStashConnectionError",
    "QStashError",
    "QStashRetryableError",
    "QStashTransportError",
    "redact",
]
