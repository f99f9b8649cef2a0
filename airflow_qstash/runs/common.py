"""
What every run shares: the stop flag and the bound on requests (:class:`Run`), progress judged on what
is LEFT (:class:`Progress`), the bounded poll of one bulk action and the bookkeeping of the actions a run
follows (:class:`ActionRun`), and the summary basics (:meth:`Run.window_summary`).

A run is a sans-IO procedure: it yields the protocol's effects and the hook's ``drive`` sends them. Every
loop here ends: a stop request or a spent bound raises :class:`~airflow_qstash.exceptions.QStashRunIncomplete`
before the next request, a poll of one action ends at ``action_timeout``, and rounds that leave as much as
the round before end the run after :data:`MAX_ROUNDS_WITHOUT_PROGRESS` of them.

Nothing here imports the protocol at import time (the operator modules import the runs at DAG parse time).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_qstash.inputs import now_ms, parse_action_timeout

if TYPE_CHECKING:
    from airflow_qstash.exceptions import QStashRunIncomplete
    from airflow_qstash.filters import BulkCancelFilter, DLQFilter, FilterTable
    from airflow_qstash.protocol.messages import BulkAction

#: The ceiling of the pause between polls of a bulk action (and between conflicting starts) when the caller
#: gives none: the connection's ``poll_interval_max`` default.
DEFAULT_POLL_INTERVAL_MAX = 10.0
#: The first pause between polls of a bulk action; it grows by :data:`POLL_GROWTH` up to the ceiling.
POLL_INITIAL = 1.0
POLL_GROWTH = 1.5
#: How many rounds in a row may leave as much as the round before (a bulk action finds the same non-zero
#: ``total`` again; a DLQ page acts on nothing while the cursor stays) before a run stops as incomplete.
#: Declared once, for the bulk-cancel and the DLQ runs.
MAX_ROUNDS_WITHOUT_PROGRESS = 3
#: The reason a run gives when ``stop()`` was called.
STOPPED = "stopped on request (task killed)"


@dataclass
class Progress:
    """
    Progress judged on what is LEFT, never on what the server says it processed.

    :meth:`record_left` takes what a round found left (a bulk action's ``total``) and returns what went
    since the round before (the drop, never negative); :meth:`note` takes whether a round made progress.
    A round that leaves as much as the one before (the same non-zero ``total``, or a page that acted on
    nothing under the same cursor) counts as stalled; :attr:`stuck` after
    :data:`MAX_ROUNDS_WITHOUT_PROGRESS` in a row.
    """

    #: What the last round found left; ``None`` before the first.
    left: int | None = None
    #: Rounds in a row that left as much as the round before.
    stalled: int = 0

    def record_left(self, left: int) -> int:
        """Record a round that found ``left``; return how many went since the round before."""
        previous, self.left = self.left, left
        if previous is None:
            return 0
        self.note(left == 0 or left < previous)
        return max(0, previous - left)

    def note(self, progressed: bool) -> None:
        """Record whether a round made progress."""
        self.stalled = 0 if progressed else self.stalled + 1

    @property
    def stuck(self) -> bool:
        """Whether the rounds stopped making progress: the run must end as incomplete."""
        return self.stalled >= MAX_ROUNDS_WITHOUT_PROGRESS


@dataclass(kw_only=True)
class Run(ABC):
    """
    The basics of every run: when it started, its stop flag, the check before each request, and the
    error and summary parts it reports with.
    """

    #: The monotonic start (durations) and the wall-clock start (Unix ms: what may be joined).
    started: float = field(default_factory=time.monotonic)
    started_ms: int = field(default_factory=now_ms)
    #: The monotonic clock of the polls (tests replace it).
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def stop(self) -> None:
        """Ask the run to stop before its next request (thread-safe; ``on_kill`` calls it)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @abstractmethod
    def incomplete(self, reason: str) -> QStashRunIncomplete:
        """The error to raise when the run stops early; it carries the running totals."""

    def check_stop(self, note: str = "") -> None:
        """Raise :meth:`incomplete` (its reason ending with ``note``) when the run was stopped."""
        if self.stopped:
            raise self.incomplete(STOPPED + note)

    def check_before_request(self, used: int, bound: int, name: str, doing: str) -> None:
        """
        The request budget: raise :meth:`incomplete` when the run was stopped, or when ``used`` requests
        reached the ``bound`` the author gave as ``name`` (``max_batches``/``max_requests``); ``doing``
        ends the reason ("while listing").
        """
        self.check_stop()
        if used >= bound:
            raise self.incomplete(f"{name}={bound} reached {doing}")

    def duration(self) -> float:
        """Seconds since the run started, rounded to milliseconds."""
        return round(time.monotonic() - self.started, 3)

    def per_second(self, done: int) -> float:
        """``done`` per second so far."""
        return done / max(time.monotonic() - self.started, 1e-9)

    def window_summary(self, value: BulkCancelFilter | DLQFilter, table: FilterTable | None = None) -> dict[str, Any]:
        """
        The summary keys every run reports: the window used (Unix ms), the filters (described with the
        run's ``table``, an action's, which names the all-flag as its author does), the duration.
        """
        return {
            "from_date": value.from_date,
            "to_date": value.to_date,
            "filters": value.describe(table),
            "duration_seconds": self.duration(),
        }


@dataclass(kw_only=True)
class ActionRun(Run):
    """
    A run that follows bulk actions: the actions it followed, the ones an earlier try stored, and the
    bounded poll of one action until ``FINISHED``.

    :param action_timeout: the longest one bulk action is followed, in seconds (``None``: the default).
    :param resume_action_ids: bulk actions an earlier try of this task started (from the task state
        store): the run re-attaches to the last one by id before it starts any.
    :param on_action: called with each bulk action's id before its first poll (the operator stores it).
    """

    action_timeout: Any = None
    #: The bulk actions followed (started, joined or re-attached), in order.
    action_ids: list[str] = field(default_factory=list)
    resume_action_ids: list[str] = field(default_factory=list)
    on_action: Callable[[str], None] | None = field(default=None, repr=False)
    #: Rounds recorded, and ``GET /v2/bulkActions/{id}`` polls (bounded by ``action_timeout``).
    rounds: int = 0
    polls: int = 0

    def __post_init__(self) -> None:
        self.action_timeout = parse_action_timeout(self.action_timeout)

    def note_action(self, action_id: str) -> None:
        """Keep a followed action's id (once) and hand it to :attr:`on_action` before its first poll."""
        if action_id not in self.action_ids:
            self.action_ids.append(action_id)
        if self.on_action is not None:
            self.on_action(action_id)

    def poll_action(
        self,
        action_id: str,
        poll_interval_max: float,
        on_poll: Callable[[BulkAction, float], None],
        *,
        stop_note: str = "",
    ) -> Generator[Any, Any, BulkAction]:
        """
        Poll one bulk action until ``FINISHED``; return it as last read. The pause starts at
        :data:`POLL_INITIAL` seconds and grows by :data:`POLL_GROWTH` up to ``poll_interval_max``;
        ``on_poll`` gets each reading and the seconds since the first. A stop request (its reason ends with
        ``stop_note``) or ``action_timeout`` ends it as incomplete; the action goes on in QStash. A failed
        read is raised as it came.
        """
        from airflow_qstash.protocol.calls import Sleep
        from airflow_qstash.protocol.messages import get_bulk_action

        began = self.clock()
        pause = min(POLL_INITIAL, poll_interval_max)
        while True:
            action: BulkAction = yield from get_bulk_action(action_id)
            self.polls += 1
            elapsed = self.clock() - began
            on_poll(action, elapsed)
            if action.finished:
                return action
            self.check_stop(stop_note)
            if elapsed + pause > self.action_timeout:
                raise self.incomplete(
                    f"bulk action {action.action_id} still {action.state} ({action.processed} of {action.total}) "
                    f"after {elapsed:.0f} s, past action_timeout={self.action_timeout:g} s; it goes on in QStash, "
                    "and running the task again joins it"
                )
            yield Sleep(pause)
            pause = min(pause * POLL_GROWTH, poll_interval_max)
