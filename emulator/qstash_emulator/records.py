"""The record a message is inserted as (:class:`NewMessage`) and the emulator's clock (:func:`now_ms`).

Apart from :mod:`qstash_emulator.store` so that :mod:`qstash_emulator.seeding` can build messages
without importing the store that seeds them.
"""

from __future__ import annotations

import time
from typing import NamedTuple


def now_ms() -> int:
    """Current time as Unix milliseconds."""
    return time.time_ns() // 1_000_000


class NewMessage(NamedTuple):
    """A message ready to be inserted (already validated and normalised).

    Labels never contain commas (every input form is split on commas), so they are
    stored comma-joined.
    """

    message_id: str
    url: str
    host: str
    path: str
    topic_name: str | None = None
    queue_name: str | None = None
    labels: tuple[str, ...] = ()
    flow_control_key: str | None = None
    schedule_id: str | None = None
    caller_ip: str | None = None
    method: str = "POST"
    body: str | None = None
    created_at: int = 0
    max_retries: int | None = None
    header: str | None = None
    upstash_headers: str | None = None


__all__ = ["NewMessage", "now_ms"]
