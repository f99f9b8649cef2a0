"""How an answer is read: rate-limit waits, size limits, decoding, the JSON and its error text, counts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_qstash.config import RetryPolicy
from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError, QStashRetryableError, redact
from airflow_qstash.inputs import now_ms
from airflow_qstash.protocol.calls import Call

# --------------------------------------------------------------------------- answers


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number == number and abs(number) != float("inf") else None


_RATE_LIMIT_HEADERS = (
    "Burst-RateLimit-Reset",
    "Burst-RateLimit-Remaining",
    "Burst-RateLimit-Limit",
    "RateLimit-Reset",
    "RateLimit-Remaining",
    "RateLimit-Limit",
    "Retry-After",
)


def has_rate_limit_headers(headers: Mapping[str, str]) -> bool:
    """Whether a 429 says it is a rate limit (``Burst-RateLimit-*``, ``RateLimit-*`` or ``Retry-After``)."""
    return any(headers.get(name) is not None for name in _RATE_LIMIT_HEADERS)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """
    Seconds until QStash lets the caller try again, from a 429's headers; ``None`` if it did not say.

    The burst window (``Burst-RateLimit-*``) is preferred when it is the one spent, then the daily one
    (``RateLimit-*``), then ``Retry-After``. Reset headers are Unix seconds.
    """
    candidates = [
        (_header_number(headers, f"{prefix}RateLimit-Remaining"), _header_number(headers, f"{prefix}RateLimit-Reset"))
        for prefix in ("Burst-", "")
    ]
    resets = [reset for remaining, reset in candidates if reset is not None and remaining == 0]
    resets = resets or [reset for _, reset in candidates if reset is not None]
    if resets:
        return max(0.0, resets[0] - now)
    retry_after = _header_number(headers, "Retry-After")
    return max(0.0, retry_after) if retry_after is not None else None


#: The most bytes of one answer either transport reads. A larger answer (by its ``Content-Length``, or once
#: this many bytes have arrived) is refused without reading the rest. The largest real answer is a DLQ page
#: of 100 entries, each with a message body and the last response body (QStash keeps message bodies up to
#: 10 MB on its paid plans); ask such a listing for fewer entries per page.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: How many characters of a server's text an error quotes (its JSON ``error`` text gets more).
QUOTED_CHARS = 200
QUOTED_ERROR_CHARS = 500


def declared_length(headers: Mapping[str, str]) -> int | None:
    """An answer's ``Content-Length`` as a number, or ``None`` when it has none or an unreadable one."""
    value = headers.get("Content-Length")
    if value is None or not str(value).strip().isdecimal():
        return None
    return int(str(value).strip())


def answer_too_large(call: Call, status: int, size: int | None) -> QStashAPIError:
    """
    The error for an answer larger than :data:`MAX_ANSWER_BYTES`: ``size`` is its ``Content-Length``, or
    ``None`` when it had none and more than the cap arrived. Nothing past the cap was read.
    """
    told = f"of {size:,} bytes by its Content-Length" if size is not None else "without a Content-Length"
    return QStashAPIError(
        f"QStash {call.method} {call.endpoint.path} answered {status} with a body {told}, more than the "
        f"{MAX_ANSWER_BYTES:,} bytes this provider reads; nothing past that was read. Check the connection's "
        "host (is it QStash?); a DLQ listing takes a smaller count.",
        http_status=status,
    )


def decode_body(headers: Mapping[str, str], raw: bytes) -> str:
    """An answer's bytes as text: the ``charset`` of its ``Content-Type``, else UTF-8 (JSON's encoding)."""
    content_type = str(headers.get("Content-Type") or "")
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _api_error_text(body: str, secret: str | None = None) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return redact(data["error"], secret, limit=QUOTED_ERROR_CHARS)
    return redact(body.strip(), secret, limit=QUOTED_CHARS) or "(empty body)"


def read_answer(
    call: Call, status: int, headers: Mapping[str, str], body: str, policy: RetryPolicy, secret: str | None = None
) -> Any:
    """
    Read one answer: the parsed JSON of a 2xx, or the right error, its text redacted of ``secret``.

    A 3xx is never followed: it fails with the status and the ``Location`` (a redirect that dropped the
    query string would turn a filtered cancel into a cancel of everything). 429 and 5xx raise
    :class:`QStashRetryableError` (with QStash's reset wait for a 429); on a filter cancel a 412, or a 429
    without rate-limit headers, raises :class:`QStashActionConflict`; a reset further away than
    ``policy.max_rate_limit_wait`` and every other status raise :class:`QStashAPIError` with the status and
    QStash's ``error`` text.
    """
    where = f"QStash {call.method} {call.endpoint.path}"
    if 200 <= status < 300:
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            shown = redact(body, secret, limit=QUOTED_CHARS)  # redacted before the cut, and then cut
            raise QStashAPIError(
                redact(f"{where} answered {status} with a body that is not JSON: {shown!r}", secret),
                http_status=status,
            ) from None
    if 300 <= status < 400:
        location = redact(str(headers.get("Location") or "(no Location header)"), secret, limit=300)
        raise QStashAPIError(
            f"{where} answered {status} redirecting to {location}; this provider never follows redirects "
            "(the target would get the token, and a redirect that drops the query would cancel more). Put the "
            "final base URL in the connection's host.",
            http_status=status,
        )
    api_error = _api_error_text(body, secret)
    message = f"{where} failed with {status}: {api_error}"
    if call.conflict_aware and (status == 412 or (status == 429 and not has_rate_limit_headers(headers))):
        raise QStashActionConflict(message, http_status=status, api_error=api_error)
    if status == 429:
        wait = rate_limit_wait(headers, now_ms() / 1000)
        if wait is not None and wait > policy.max_rate_limit_wait:
            raise QStashAPIError(
                f"{message}. The rate limit resets in {wait:.0f} s, later than max_rate_limit_wait="
                f"{policy.max_rate_limit_wait:g} s (a spent daily quota?); run again after the reset.",
                http_status=status,
                api_error=api_error,
            )
        raise QStashRetryableError(message, wait=wait, http_status=status, api_error=api_error)
    if status >= 500:
        raise QStashRetryableError(message, http_status=status, api_error=api_error)
    hint = {401: " Check the token in the connection's password.", 404: " Check the connection's host."}
    if status in hint and not message.endswith("."):
        message += "."
    raise QStashAPIError(message + hint.get(status, ""), http_status=status, api_error=api_error)


def read_count(answer: Any, key: str, what: str) -> int:
    """The count ``key`` of a JSON answer (a whole number >= 0), or a clear error naming ``what`` answered."""
    value = answer.get(key) if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QStashAPIError(f"QStash's {what} answer has no valid {key!r} count: {redact(answer, limit=QUOTED_CHARS)}")
    return value


def read_cancelled(answer: Any) -> int:
    """The ``cancelled`` count of a synchronous bulk cancel's JSON answer."""
    return read_count(answer, "cancelled", "bulk cancel")
