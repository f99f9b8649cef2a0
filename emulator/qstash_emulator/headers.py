"""``Upstash-*`` request headers: what they set on a message (publish, enqueue and DLQ retry).

Every ``Upstash-*`` header of the request is recorded on the message as given (admin field
``upstashHeaders``, names lower-cased); these also change its API fields:

* ``Upstash-Retries`` -> ``maxRetries`` (decimal digits, 0 to 100, else 400);
* ``Upstash-Method`` -> ``method``;
* ``Upstash-Label`` -> ``labels`` (comma-separated, replaces the labels of a retried message);
* ``Upstash-Flow-Control-Key`` -> ``flowControlKey``;
* ``Upstash-Forward-<Name>`` -> ``header[<Name>]`` (the headers forwarded to the destination).

On a DLQ retry they override the settings of the original message, as the spec says
("pass ``Upstash-Retries: 0`` to set the retry count of the retried message to 0").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qstash_emulator.query import parse_integer, split_values
from qstash_emulator.records import NewMessage

#: Largest ``Upstash-Retries`` accepted.
MAX_RETRIES = 100

_FORWARD = "upstash-forward-"


@dataclass(frozen=True)
class UpstashHeaders:
    """The ``Upstash-*`` headers of one request.

    :param recorded: every ``Upstash-*`` header, lower-cased name -> value (repeats comma-joined).
    :param max_retries: from ``Upstash-Retries``.
    :param method: from ``Upstash-Method`` (upper-cased).
    :param labels: from ``Upstash-Label``.
    :param flow_control_key: from ``Upstash-Flow-Control-Key``.
    :param forward: from ``Upstash-Forward-*``: header name -> values.
    """

    recorded: dict[str, str] = field(default_factory=dict)
    max_retries: int | None = None
    method: str | None = None
    labels: tuple[str, ...] | None = None
    flow_control_key: str | None = None
    forward: dict[str, list[str]] = field(default_factory=dict)

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
    return UpstashHeaders(
        recorded=recorded,
        max_retries=max_retries,
        method=method.strip().upper() or None if method is not None else None,
        labels=None if label is None else split_values([label]),
        flow_control_key=key.strip() or None if key is not None else None,
        forward=forward,
    )


__all__ = ["MAX_RETRIES", "UpstashHeaders", "read_upstash_headers"]
