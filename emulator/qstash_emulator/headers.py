"""``Upstash-*`` request headers: what they set on a message (publish, enqueue and DLQ retry).

Every ``Upstash-*`` header of the request is recorded on the message as given (admin field
``upstashHeaders``, names lower-cased); these also change its API fields:

* ``Upstash-Retries`` -> ``maxRetries`` (decimal digits, 0 to 100, else 400);
* ``Upstash-Method`` -> ``method``;
* ``Upstash-Label`` -> ``labels`` (comma-separated, replaces the labels of a retried message);
* ``Upstash-Flow-Control-Key`` -> ``flowControlKey``;
* ``Upstash-Forward-<Name>`` -> ``header[<Name>]`` (the headers forwarded to the destination);
* ``Upstash-Delay`` (a duration: one or more ``<digits><unit>``, unit ``ms``, ``s``, ``m``, ``h`` or
  ``d``, e.g. ``90s``, ``1h30m``; at most :data:`MAX_DELAY_MS`) -> ``notBefore`` = creation + delay;
* ``Upstash-Not-Before`` (Unix **seconds**, as the SDKs send it) -> ``notBefore``; it wins over
  ``Upstash-Delay`` when both are sent (QStash's documented precedence).

A value of these two the emulator cannot read is a 400, never ignored: a message that was meant
to wait must not look ready.

On a DLQ retry they override the settings of the original message, as the spec says
("pass ``Upstash-Retries: 0`` to set the retry count of the retried message to 0").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qstash_emulator.query import QueryError, parse_integer, split_values
from qstash_emulator.records import NewMessage

#: Largest ``Upstash-Retries`` accepted.
MAX_RETRIES = 100

_FORWARD = "upstash-forward-"

#: Longest ``Upstash-Delay`` accepted (10 years, in ms): finite, and far inside SQLite's integers.
MAX_DELAY_MS = 10 * 365 * 24 * 3600 * 1000
#: Largest ``Upstash-Not-Before`` accepted (Unix seconds; 9999-12-31).
MAX_NOT_BEFORE_S = 253_402_300_799

_DELAY_PART_RE = re.compile(r"([0-9]{1,12})(ms|s|m|h|d)")
_DELAY_RE = re.compile(r"(?:[0-9]{1,12}(?:ms|s|m|h|d)){1,5}")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_delay(text: str) -> int:
    """An ``Upstash-Delay`` value in milliseconds.

    :raises ~qstash_emulator.query.QueryError: unless it is one to five ``<digits><unit>`` parts
        (``ms``, ``s``, ``m``, ``h``, ``d``) adding up to at most :data:`MAX_DELAY_MS`.
    """
    stripped = text.strip()
    if not _DELAY_RE.fullmatch(stripped):
        raise QueryError(f"Upstash-Delay must be a duration such as 30s, 5m, 2h or 1d, got {text!r}")
    total = sum(int(n) * _UNIT_MS[unit] for n, unit in _DELAY_PART_RE.findall(stripped))
    if total > MAX_DELAY_MS:
        raise QueryError(f"Upstash-Delay must be at most {MAX_DELAY_MS} ms, got {text!r}")
    return total


@dataclass(frozen=True)
class UpstashHeaders:
    """The ``Upstash-*`` headers of one request.

    :param recorded: every ``Upstash-*`` header, lower-cased name -> value (repeats comma-joined).
    :param max_retries: from ``Upstash-Retries``.
    :param method: from ``Upstash-Method`` (upper-cased).
    :param labels: from ``Upstash-Label``.
    :param flow_control_key: from ``Upstash-Flow-Control-Key``.
    :param forward: from ``Upstash-Forward-*``: header name -> values.
    :param delay_ms: from ``Upstash-Delay``.
    :param not_before_ms: from ``Upstash-Not-Before`` (given in seconds), in ms.
    """

    recorded: dict[str, str] = field(default_factory=dict)
    max_retries: int | None = None
    method: str | None = None
    labels: tuple[str, ...] | None = None
    flow_control_key: str | None = None
    forward: dict[str, list[str]] = field(default_factory=dict)
    delay_ms: int | None = None
    not_before_ms: int | None = None

    def not_before(self, created_at: int) -> int | None:
        """When a message created at ``created_at`` may be delivered, if these headers say (Unix ms)."""
        if self.not_before_ms is not None:
            return self.not_before_ms
        return None if self.delay_ms is None else created_at + self.delay_ms

    def apply(self, message: NewMessage) -> NewMessage:
        """``message`` with these headers' settings (the ones not given keep the message's value)."""
        changes: dict[str, Any] = {}
        if self.max_retries is not None:
            changes["max_retries"] = self.max_retries
        if self.method is not None:
            changes["method"] = self.method
        if self.labels is not None:
            changes["labels"] = self.labels
        if self.flow_control_key is not None:
            changes["flow_control_key"] = self.flow_control_key
        if self.forward:
            header = json.loads(message.header) if message.header else {}
            header.update(self.forward)
            changes["header"] = json.dumps(header)
        not_before = self.not_before(message.created_at)
        changes["not_before"] = not_before  # a retried message does not keep the original's delay
        if self.recorded:
            recorded = json.loads(message.upstash_headers) if message.upstash_headers else {}
            recorded.update(self.recorded)
            changes["upstash_headers"] = json.dumps(recorded)
        return message._replace(**changes)


def read_upstash_headers(items: Iterable[tuple[str, str]]) -> UpstashHeaders:
    """Collect the ``Upstash-*`` headers of a request.

    :param items: ``(name, value)`` pairs (any case).
    :raises ~qstash_emulator.query.QueryError: for an ``Upstash-Retries`` that is not a whole
        number between 0 and 100.
    """
    recorded: dict[str, str] = {}
    forward: dict[str, list[str]] = {}
    for name, value in items:
        lowered = name.lower()
        if not lowered.startswith("upstash-"):
            continue
        recorded[lowered] = f"{recorded[lowered]},{value}" if lowered in recorded else value
        if lowered.startswith(_FORWARD) and len(lowered) > len(_FORWARD):
            forward.setdefault(name[len(_FORWARD) :], []).append(value)
    retries = recorded.get("upstash-retries")
    max_retries = None if retries is None else parse_integer("Upstash-Retries", retries, minimum=0, maximum=MAX_RETRIES)
    method = recorded.get("upstash-method")
    label = recorded.get("upstash-label")
    key = recorded.get("upstash-flow-control-key")
    delay = recorded.get("upstash-delay")
    raw_not_before = recorded.get("upstash-not-before")
    not_before = (
        None
        if raw_not_before is None
        else parse_integer("Upstash-Not-Before", raw_not_before, minimum=0, maximum=MAX_NOT_BEFORE_S) * 1000
    )
    return UpstashHeaders(
        recorded=recorded,
        max_retries=max_retries,
        method=method.strip().upper() or None if method is not None else None,
        labels=None if label is None else split_values([label]),
        flow_control_key=key.strip() or None if key is not None else None,
        forward=forward,
        delay_ms=None if delay is None else parse_delay(delay),
        not_before_ms=not_before,
    )


__all__ = ["MAX_DELAY_MS", "MAX_RETRIES", "UpstashHeaders", "parse_delay", "read_upstash_headers"]
