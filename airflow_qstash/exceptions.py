"""
The provider's one exception tree, and the one redaction every error text goes through.

::

    QStashError (AirflowException)            every error this provider raises
    ├── QStashInputError (also ValueError)    input refused before any request: a filter, a bound, an
    │   │                                     override, a connection value; operators fail the task
    │   │                                     without retries (AirflowFailException) in one place
    │   └── QStashConnectionError             the Airflow connection cannot be used as it is
    ├── QStashAPIError                        QStash answered an error (or an unreadable answer)
    │   ├── QStashRetryableError              429, 5xx: worth retrying
    │   │   └── QStashTransportError          no answer at all
    │   └── QStashActionConflict              an identical bulk action is already running
    └── QStashRunIncomplete                   a run stopped early; carries its totals so far

Nothing here knows about transports. Every message the provider builds from a server answer (2xx
included), a ``Location`` header or a connection value passes through :func:`redact` first, so the token
cannot reach a log line, an exception or a trigger event (stored in the metadata database), not even when
a server echoes it back with line breaks inside. :class:`QStashError` redacts its own message as a last
line, and every token the hooks read is remembered (:func:`remember_secret`), so a text built where the
token is not at hand (an answer reader deep in a procedure) is redacted of it all the same.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

REDACTED = "***"
#: A credential after an auth scheme, whatever it is: a server may echo a header back.
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[^\s\"',;}\]&]+")
#: Shortest piece of the token that is still redacted when it appears alone (a truncated echo).
_MIN_FRAGMENT = 12
#: What a server may put between the token's characters when it echoes it back mangled.
_NOISE = r"(?:\s|\\[nrt]|%0[aAdD])*"
#: How far past the shown length a text is read before it is redacted and cut: enough for a token
#: stretched by escapes to be recognised whole, little enough that a huge answer costs nothing.
_WINDOW_MARGIN = 16_384
#: The most tokens remembered (the triggerer serves many connections); the oldest is forgotten first.
_MAX_REMEMBERED = 256
#: Up to this many token pieces (two or three tokens) a search per piece beats one pass over the text.
_FEW_PIECES = 64
_remembered: dict[str, None] = {}
_remembered_lock = threading.Lock()


def remember_secret(secret: str | None) -> None:
    """
    Redact ``secret`` from every later :func:`redact` call in this process, given or not: the hooks call
    this when they read a connection's token. Secrets shorter than :data:`_MIN_FRAGMENT` are not
    remembered (they would mangle unrelated text); they are still redacted where they are passed.
    """
    if not secret or len(secret) < _MIN_FRAGMENT:
        return
    with _remembered_lock:
        _remembered.pop(secret, None)
        _remembered[secret] = None
        while len(_remembered) > _MAX_REMEMBERED:
            _remembered.pop(next(iter(_remembered)))


def redact(text: Any, secret: str | None = None, *, limit: int | None = None) -> str:
    """
    The one function every text built from a server answer passes through: ``text`` without any token
    (``secret`` and every remembered one, see :func:`_redact_all`), cut to ``limit`` characters.

    :param text: a message, a server's text, or any value read from an answer (shown as its ``repr``).
    :param secret: the connection's token, if known.
    :param limit: the most characters kept; a longer text is cut after redaction (a cut token would be
        too short to recognise) and ends with ``…``. Only the first ``limit`` + 16 KiB characters are read.
    """
    text = text if isinstance(text, str) else repr(text)
    cut = limit is not None and len(text) > limit
    if limit is not None:
        text = text[: limit + _WINDOW_MARGIN]
    with _remembered_lock:
        secrets = tuple(dict.fromkeys(s for s in (secret, *_remembered) if s))
    text = _redact_all(text, secrets)
    if limit is not None and (cut or len(text) > limit):
        text = text[:limit] + "…"
    return text


@functools.lru_cache(maxsize=2 * _MAX_REMEMBERED)
def _mangled(secret: str) -> re.Pattern[str]:
    """The token with line breaks or escapes between its characters, compiled once per secret."""
    return re.compile(_NOISE.join(re.escape(char) for char in secret))


@functools.lru_cache(maxsize=8)
def _pieces(secrets: frozenset[str]) -> frozenset[str]:
    """
    Every piece of :data:`_MIN_FRAGMENT` characters of every secret that long, built once per set of
    secrets (a set, not a sequence: the caller's own token comes first in its list, so connections that
    take turns would otherwise each build the same pieces again).
    """
    return frozenset(
        secret[start : start + _MIN_FRAGMENT] for secret in secrets for start in range(len(secret) - _MIN_FRAGMENT + 1)
    )


def _redact_all(text: str, secrets: tuple[str, ...]) -> str:
    """
    ``text`` without any of the secrets: each whole token, each token with line breaks or escapes inside,
    any piece of one of :data:`_MIN_FRAGMENT` characters or more, and any ``Bearer <anything>``.

    With more than a token or two, one pass over the text finds the pieces of every secret at once (a set
    look-up per position), so the cost grows with the text, not with the number of remembered tokens: with
    256 remembered, a 200-character redaction took 5.3 ms when each secret was searched on its own, and
    0.13 ms this way (``bench/bench_redact.py``, 2026-12-05).
    """
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    for secret in secrets:
        text = _mangled(secret).sub(REDACTED, text)
    pieces = _pieces(frozenset(secret for secret in secrets if len(secret) >= _MIN_FRAGMENT))
    if not pieces:
        return text
    covered = bytearray(len(text))
    if len(pieces) <= _FEW_PIECES:  # a token or two: a search per piece is quickest
        for piece in pieces:
            found = text.find(piece)
            while found != -1:
                covered[found : found + _MIN_FRAGMENT] = b"\x01" * _MIN_FRAGMENT
                found = text.find(piece, found + 1)
    else:  # many tokens: one look-up per position, whatever their number
        for start in range(len(text) - _MIN_FRAGMENT + 1):
            if text[start : start + _MIN_FRAGMENT] in pieces:
                covered[start : start + _MIN_FRAGMENT] = b"\x01" * _MIN_FRAGMENT
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
    """
    Base class of every error this provider raises. Its message is passed through :func:`redact` once
    more: no remembered token reaches a log, a task failure or a trigger event.
    """

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(redact(str(message)), *args)


class QStashInputError(QStashError, ValueError):
    """
    Input refused before any request was sent: a filter (or the lack of one), a count or bound, a retry
    override, an id, a connection value. The message says what to change. Also a ``ValueError`` for hook
    users; the operators turn it into an ``AirflowFailException`` (a retry cannot fix it).

    :param no_filter: the refusal is "nothing selects anything and the all-flag was not given".
    """

    def __init__(self, message: Any = "", *args: Any, no_filter: bool = False) -> None:
        super().__init__(message, *args)
        self.no_filter = no_filter


class QStashConnectionError(QStashInputError):
    """
    The Airflow connection is missing something or holds a value the hook cannot use (or names a host
    that refuses connections or does not exist): an input error of the connection.
    """


class QStashAPIError(QStashError):
    """
    QStash answered with an error status (or an answer the provider cannot read).

    :param http_status: the HTTP status, if there was an answer.
    :param api_error: the ``error`` text of QStash's JSON answer (or the start of a non-JSON body), redacted.
    """

    def __init__(self, message: str, *, http_status: int | None = None, api_error: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.api_error = None if api_error is None else redact(api_error)


class QStashRetryableError(QStashAPIError):
    """A failure worth retrying: 429, 5xx, or a network error; ``wait`` is what QStash asked for, if it did."""

    def __init__(self, message: str, *, wait: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.wait = wait


class QStashTransportError(QStashRetryableError):
    """No answer: the connection failed, was dropped, or the attempt's deadline passed."""


class DLQEndpointsMissing(QStashAPIError):
    """The server answered 404 where the 2026-12 DLQ API has an endpoint: an older server; use the paging API."""


class QStashActionConflict(QStashAPIError):
    """
    A filter cancel answered 412, or 429 without rate-limit headers: an identical bulk action is
    (probably) already running. Not retried as such: the caller looks the action up and follows it.
    """


class QStashRunIncomplete(QStashError):
    """
    A run (bulk cancel, DLQ delete or retry) stopped with items possibly left: its bound spent, killed, no
    progress, or a request failed for good. ``summary`` holds the totals so far (the XCom form).
    """

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


__all__ = [
    "REDACTED",
    "DLQEndpointsMissing",
    "QStashAPIError",
    "QStashActionConflict",
    "QStashConnectionError",
    "QStashError",
    "QStashInputError",
    "QStashRetryableError",
    "QStashRunIncomplete",
    "QStashTransportError",
    "redact",
    "remember_secret",
]
