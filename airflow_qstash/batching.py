"""
The batch loop's bookkeeping, without I/O, so the worker and the triggerer drive the same loop.

A caller sends one bulk cancel of ``batch_size`` per step and records what it cancelled::

    run = BulkCancelRun(bulk_filter, batch_size=500, max_batches=None)
    while run.wants_more():
        run.record(hook.bulk_cancel_by_filter(run.bulk_filter, run.batch_size))
    return run.summary()

The loop ends when a batch cancels zero (for N matching messages that is ceil(N / batch_size) + 1
requests), when ``max_batches`` is spent (an error: messages may remain; a retry continues), or when
``stop()`` is called (an error: the task was killed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_qstash.filters import EMPTY_RENDERINGS, BulkCancelFilter, BulkCancelFilterError, parse_count


class BulkCancelIncomplete(Exception):
    """The loop stopped with messages possibly left: ``max_batches`` spent, killed, or a batch failed."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary


def parse_max_batches(value: Any) -> int | None:
    """Read ``max_batches``: ``None`` (unbounded, the pinned ``to_date`` still ends the loop) or an int >= 1."""
    if value is None or (isinstance(value, str) and value.strip().lower() in EMPTY_RENDERINGS):
        return None
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BulkCancelFilterError(f"max_batches must be a whole number >= 1 or None, not {value!r}.")
    return value


@dataclass
class BulkCancelRun:
    """
    Counters and the stop decision of one bulk-cancel job; it keeps totals, never message lists.

    :param bulk_filter: what every batch cancels.
    :param batch_size: messages per request (QStash's ``count``), 1..500.
    :param max_batches: the most requests to make, or ``None``.
    """

    bulk_filter: BulkCancelFilter
    batch_size: Any
    max_batches: Any = None
    cancelled: int = 0
    batches: int = 0
    last_batch: int | None = None
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.batch_size = parse_count(self.batch_size, "batch_size")
        self.max_batches = parse_max_batches(self.max_batches)

    @property
    def finished(self) -> bool:
        """True once a batch cancelled zero: nothing the filter selects is left."""
        return self.last_batch == 0

    def wants_more(self) -> bool:
        """Whether to send another batch; raises :class:`BulkCancelIncomplete` when it must not but should."""
        if self.finished:
            return False
        if self._stop.is_set():
            raise self.incomplete("stopped on request (task killed)")
        if self.max_batches is not None and self.batches >= self.max_batches:
            raise self.incomplete(f"max_batches={self.max_batches} reached and the last batch still cancelled some")
        return True

    def record(self, cancelled_in_batch: int) -> None:
        """Count one batch's answer."""
        self.batches += 1
        self.last_batch = cancelled_in_batch
        self.cancelled += cancelled_in_batch

    def stop(self) -> None:
        """Ask the loop to stop before its next batch (thread-safe; ``on_kill`` calls it)."""
        self._stop.set()

    @property
    def rate(self) -> float:
        """Messages cancelled per second so far."""
        return self.cancelled / max(time.monotonic() - self.started, 1e-9)

    def progress_line(self) -> tuple[str, int, int, int, float]:
        """A %-style log line and its arguments for the batch just recorded."""
        return (
            "Batch %d: cancelled %d (total %d, %.0f messages/s).",
            self.batches,
            self.last_batch or 0,
            self.cancelled,
            self.rate,
        )

    def summary(self) -> dict[str, Any]:
        """The XCom value: totals and the window actually used (Unix ms)."""
        return {
            "cancelled": self.cancelled,
            "batches": self.batches,
            "from_date": self.bulk_filter.from_date,
            "to_date": self.bulk_filter.to_date,
            "filters": self.bulk_filter.describe(),
            "duration_seconds": round(time.monotonic() - self.started, 3),
        }

    def incomplete(self, reason: str) -> BulkCancelIncomplete:
        """The error to raise when the job stops early; it carries the running total."""
        return BulkCancelIncomplete(
            f"QStash bulk cancel incomplete: {reason}. Cancelled {self.cancelled} message(s) in "
            f"{self.batches} batch(es) so far; running the task again continues safely "
            "(already-cancelled messages are gone).",
            self.summary(),
        )
