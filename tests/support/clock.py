"""
Pinned clocks for tests whose expectation would otherwise depend on the wall clock or the calendar day.

* :func:`pin_wall_clock` fixes what the provider reads as "now" when it turns a 429's ``*-Reset`` header
  (Unix seconds) into a wait, so the expected wait is exact instead of bracketed by two clock reads (a
  bracket that fails when the machine stalls for half a second between them).
* :func:`clear_of_midnight` says how long a test that reads "today" must wait so that no UTC midnight falls
  inside its run: a scheduler that crosses midnight while the test runs adds a run for the day that just ended.

EDGE_INSTANTS are the moments the clock-dependent logic is proven at (tests/integration/properties/test_clock_edges.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

#: A wall-clock instant half a second before a year's end (2026-12-31T23:59:59.5Z), in Unix seconds.
PINNED_NOW = datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc).timestamp()

#: Instants where a day, month, year, DST period or leap day begins or ends (UTC).
EDGE_INSTANTS = (
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    datetime(2027, 1, 1, 0, 0, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 5, 0, 0, 0, tzinfo=timezone.utc),  # a day 1-9
    datetime(2026, 3, 29, 0, 59, tzinfo=timezone.utc),  # EU clocks go forward at 01:00 UTC
    datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc),
    datetime(2026, 10, 25, 0, 59, tzinfo=timezone.utc),  # EU clocks go back at 01:00 UTC
    datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc),  # US (Eastern) clocks go back at 06:00 UTC
    datetime(2028, 2, 29, 12, 0, tzinfo=timezone.utc),
    datetime(2028, 2, 29, 23, 59, 59, 999000, tzinfo=timezone.utc),
    datetime(2028, 3, 1, 0, 0, tzinfo=timezone.utc),
    datetime(2026, 2, 28, 23, 59, 59, tzinfo=timezone.utc),
)


def pin_wall_clock(monkeypatch: pytest.MonkeyPatch, now: float = PINNED_NOW) -> float:
    """Make the provider's one wall-clock reader (:func:`airflow_qstash.inputs.now_ms`) read ``now`` (Unix
    seconds); returns it."""
    from airflow_qstash import inputs

    monkeypatch.setattr(inputs, "time", SimpleNamespace(time_ns=lambda: int(now * 1_000_000_000)))
    return now


def clear_of_midnight(now: datetime, needed: timedelta) -> timedelta:
    """
    How long to wait from ``now`` so that the next ``needed`` hold no UTC midnight: zero when the next midnight
    is at least ``needed`` away, else until just after that midnight (one second past it).
    """
    now = now.astimezone(timezone.utc)
    next_midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = next_midnight - now
    return timedelta(0) if left >= needed else left + timedelta(seconds=1)
