"""
The round loop, without I/O, so the worker and the triggerer drive the same loop.

A round is one synchronous batch (a server that honours ``count``, or explicit ids) or one background
bulk action followed to ``FINISHED`` (today's hosted QStash). The loop ends on what is LEFT, never on what
the server says it processed: only a round whose selection was empty (a batch that cancelled 0, or a bulk
action whose ``total`` is 0) ends it. For N matching messages on a batched server that is
ceil(N / batch_size) + 1 requests; on a bulk action server it is one action, then a confirming one that
finds nothing (a finished action is always followed by one: it catches messages a partial action left,
or an action that reports them processed and left them). On a bulk action server ``cancelled`` counts the
messages confirmed gone: the drop of the matching ``total`` from one action to the next, not the
``processed`` the server reports; rounds that leave as much as the round before (the same non-zero
``total`` again) stop the run after :data:`~.common.MAX_ROUNDS_WITHOUT_PROGRESS` of them.

:meth:`BulkCancelRun.steps` is a sans-IO procedure: the hook's ``drive`` sends its calls and takes its
pauses::

    run = BulkCancelRun(bulk_filter, batch_size=500)
    summary = hook.drive(run.steps(hook.config.base_url, poll_interval_max=10.0, log=log))

It stops with :class:`QStashRunIncomplete` when ``max_batches`` is spent (messages may remain; a retry
continues), when an action is not finished within ``action_timeout``, when rounds stop shrinking what is
left, when a request fails for good, or when ``stop()`` is called (the task was killed). The stop flag, the
bounded poll and the judgement on what is left are shared with the DLQ runs (:mod:`.common`); when to
join a running action is :mod:`.join`. :func:`bulk_cancel_total` is the one-pass cancel of the hook's
``bulk_cancel``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_qstash.exceptions import QStashAPIError, QStashRunIncomplete
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.inputs import parse_bound, parse_count
from airflow_qstash.runs.common import DEFAULT_POLL_INTERVAL_MAX, ActionRun, Progress
from airflow_qstash.runs.join import JOIN_CLOCK_SKEW_MS, resume_action_id, start_or_join

if TYPE_CHECKING:
    from airflow_qstash.protocol.calls import Procedure
    from airflow_qstash.protocol.messages import ActionStarted, BulkAction, BulkCancelAnswer

#: Modes a run reports: which server generation answered.
MODE_BATCHED = "batched"
MODE_BULK_ACTION = "bulk_action"


@dataclass
class BulkCancelRun(ActionRun):
    """
    Counters and the stop decision of one bulk-cancel job; it keeps totals, never message lists.

    :param bulk_filter: what every round cancels.
    :param batch_size: messages per request (QStash's ``count``), 1..500; a bulk-action server ignores it.
    :param max_batches: the most rounds: on a server that honours ``count``, requests (each part of a long
        id list split to fit URLs counts); on today's hosted QStash, bulk actions followed. ``None``:
        :data:`~airflow_qstash.inputs.DEFAULT_MAX_REQUESTS`.

    The keywords of :class:`~airflow_qstash.runs.common.ActionRun` (``action_timeout``,
    ``resume_action_ids``, ``on_action``, ``clock``) apply.
    """

    bulk_filter: BulkCancelFilter
    batch_size: Any
    max_batches: Any = None
    #: Messages confirmed gone (batched: the synchronous counts; bulk actions: the drop of ``total``).
    cancelled: int = 0
    #: Requests sent (batches, or bulk actions started or joined).
    batches: int = 0
    #: What the last round selected: a batch's count, or the bulk actions' ``total``; 0 ends the run.
    last_selected: int | None = None
    #: What the last bulk action reported processed and no later round has confirmed gone yet.
    unconfirmed: int = 0
    mode: str | None = None
    #: What the bulk actions found left, round by round.
    progress: Progress = field(default_factory=Progress, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.batch_size = parse_count(self.batch_size, "batch_size")
        self.max_batches = parse_bound(self.max_batches, "max_batches")

    @property
    def finished(self) -> bool:
        """True once a round's selection was empty: nothing the filter selects is left."""
        return self.last_selected == 0

    @property
    def left(self) -> int | None:
        """Messages still matching at the last bulk action (its ``total``), ``None`` if not known."""
        return self.progress.left

    def wants_more(self) -> bool:
        """Whether to start another round; raises :class:`QStashRunIncomplete` when it must not but should."""
        if self.finished:
            return False
        self.check_before_request(self.batches, self.max_batches, "max_batches", "and the last round still found some")
        return True

    # ----------------------------------------------------------------------- the procedure

    def steps(
        self, base_url: str, *, poll_interval_max: float = DEFAULT_POLL_INTERVAL_MAX, log: Any = None
    ) -> Generator[Any, Any, dict[str, Any]]:
        """
        The whole job as a sans-IO procedure (see :mod:`airflow_qstash.protocol`); returns :meth:`summary`.

        :param base_url: the connection's base URL (the URL length limit depends on it).
        :param poll_interval_max: the ceiling of the pause between polls of a bulk action, in seconds.
        :param log: a logger for progress lines, or ``None``.
        """
        from airflow_qstash.protocol.messages import ActionStarted, bulk_cancel_requests

        requests = bulk_cancel_requests(self.bulk_filter, self.batch_size, base_url)
        yield from self._reattach(poll_interval_max, log)
        while self.wants_more():
            batch_cancelled = 0
            actions: list[BulkAction] = []
            for params in requests:  # one, or a long id list split to fit URLs: each counts as a request
                self.check_before_request(self.batches, self.max_batches, "max_batches", "in the middle of an id list")
                try:
                    answer = yield from start_or_join(
                        params,
                        max_pause=poll_interval_max,
                        exclude=self.action_ids,
                        not_before_ms=self.started_ms - JOIN_CLOCK_SKEW_MS,
                    )
                    if isinstance(answer, ActionStarted):
                        actions.append((yield from self._follow(answer, poll_interval_max, log)))
                    else:
                        self._set_mode(MODE_BATCHED, log)
                        batch_cancelled += answer.cancelled
                except QStashAPIError as err:
                    what = "bulk action request" if self.mode == MODE_BULK_ACTION else "batch"
                    raise self.incomplete(f"{what} {self.batches + 1} failed: {err}") from err
                self.batches += 1
            self._record_round(batch_cancelled, actions, log)
        return self.summary()

    def _record_round(self, batch_cancelled: int, actions: list[BulkAction], log: Any) -> None:
        """
        Count one round and decide on what is left. A synchronous batch's count is exact; a bulk action's
        ``processed`` is only a claim: what went is the drop of ``total`` from the last action to this one.
        """
        self.rounds += 1
        self.cancelled += batch_cancelled
        if not actions:
            self.last_selected = batch_cancelled
            if log is not None:
                log.info(*self.progress_line())
            return
        total = sum(action.total for action in actions)
        processed = sum(action.processed for action in actions)
        self.cancelled += self.progress.record_left(total)
        self.unconfirmed = processed if total > 0 else 0
        self.last_selected = total + batch_cancelled
        if log is not None:
            log.info(*self.progress_line(actions))
        if self.progress.stuck:
            raise self.incomplete(
                f"{self.progress.stalled + 1} bulk actions in a row found {total} matching message(s) and left them "
                f"(each reported {processed} processed, yet the next found as many): no progress; {total} message(s) "
                "left"
            )

    def _set_mode(self, mode: str, log: Any) -> None:
        if self.mode is None and mode == MODE_BULK_ACTION and log is not None:
            log.info(
                "This QStash runs filter cancels as background bulk actions: batch_size=%d is ignored; each "
                "round is one bulk action over every matching message, and a finished action is followed by "
                "a confirming round that must find none.",
                self.batch_size,
            )
        self.mode = self.mode if self.mode == MODE_BULK_ACTION else mode

    def _reattach(self, poll_interval_max: float, log: Any) -> Generator[Any, Any, None]:
        """
        Re-attach to the last bulk action an earlier try started (:attr:`resume_action_ids`), by id, and
        follow it as this run's first round: no start is sent for it. An id the server no longer knows (or
        a failed read) is logged and the run goes on as a fresh one, which joins a running action by its
        filter.
        """
        from airflow_qstash.protocol.messages import ActionStarted

        action_id = resume_action_id(self.resume_action_ids, self.action_ids)
        if action_id is None:
            return
        self.check_stop()
        try:
            action = yield from self._follow(ActionStarted(action_id), poll_interval_max, log, reattached=True)
        except QStashAPIError as err:
            if log is not None:
                log.warning(
                    "Bulk action %s from an earlier try could not be read (%s); going on as a fresh run, which joins "
                    "a running action with this filter.",
                    action_id,
                    err,
                )
            return
        self.batches += 1
        self._record_round(0, [action], log)

    def _follow(
        self, started: ActionStarted, poll_interval_max: float, log: Any, *, reattached: bool = False
    ) -> Generator[Any, Any, BulkAction]:
        """Poll one bulk action until ``FINISHED``; return it as last read."""
        self._set_mode(MODE_BULK_ACTION, log)
        self.note_action(started.action_id)
        if log is not None:
            how = "started"
            if reattached:
                how = "re-attached by its id (stored in the task state store by an earlier try; no new start)"
            elif started.joined:
                how = "already running with this filter: joined"
            log.info("Round %d: bulk action %s %s; following it.", self.rounds + 1, started.action_id, how)

        def on_poll(action: BulkAction, elapsed: float) -> None:
            if log is not None:
                log.info(*self.poll_line(action, elapsed))

        return (yield from self.poll_action(started.action_id, poll_interval_max, on_poll))

    # ----------------------------------------------------------------------- reporting

    @property
    def rate(self) -> float:
        """Messages cancelled per second so far."""
        return self.per_second(self.cancelled)

    def progress_line(self, actions: list[BulkAction] | None = None) -> tuple[Any, ...]:
        """A %-style log line and its arguments for the round just recorded: a batch, or bulk actions."""
        if not actions:
            return (
                "Batch %d: cancelled %d (total %d, %.0f messages/s).",
                self.batches,
                self.last_selected or 0,
                self.cancelled,
                self.rate,
            )
        ids = ", ".join(action.action_id for action in actions)
        total = sum(action.total for action in actions)
        if total == 0:
            return (
                "Round %d: bulk action %s found no matching message: done; %d message(s) confirmed cancelled.",
                self.rounds,
                ids,
                self.cancelled,
            )
        return (
            "Round %d: bulk action %s found %d matching message(s) and reports %d processed; %d confirmed "
            "cancelled so far; a confirming round follows.",
            self.rounds,
            ids,
            total,
            sum(action.processed for action in actions),
            self.cancelled,
        )

    @staticmethod
    def poll_line(action: BulkAction, elapsed: float) -> tuple[Any, ...]:
        """A %-style log line for one poll: id, processed of total, percent, rate and time left."""
        percent = 100.0 * action.processed / action.total if action.total else 100.0
        rate = action.processed / elapsed if elapsed > 0 else 0.0
        left = (action.total - action.processed) / rate if rate > 0 else float("nan")
        return (
            "Bulk action %s %s: %d of %d processed (%.1f%%), %.0f messages/s, about %s left.",
            action.action_id,
            action.state,
            action.processed,
            action.total,
            percent,
            rate,
            "0 s" if action.finished else ("unknown time" if left != left else f"{left:.0f} s"),
        )

    def summary(self) -> dict[str, Any]:
        """
        The XCom value: totals, the mode, the bulk actions followed and the window used (Unix ms).

        ``cancelled`` counts messages confirmed gone; ``batches`` the requests (batches or bulk actions);
        ``rounds`` the rounds; ``left`` the messages the last bulk action still found (``None`` on a batched
        server) and ``unconfirmed`` what the last bulk action reported processed that no later round has
        confirmed gone (0 once the run finished).
        """
        return {
            "cancelled": self.cancelled,
            "batches": self.batches,
            "rounds": self.rounds,
            "mode": self.mode or MODE_BATCHED,
            "action_ids": list(self.action_ids),
            "left": self.left,
            "unconfirmed": self.unconfirmed,
            **self.window_summary(self.bulk_filter),
        }

    def done_text(self) -> str:
        """How many went and in what: batches on a batched server, rounds and bulk actions otherwise."""
        if self.mode == MODE_BULK_ACTION:
            return (
                f"{self.cancelled} message(s) confirmed cancelled in {self.rounds} round(s) of bulk actions "
                f"({', '.join(self.action_ids)})"
            )
        return f"{self.cancelled} message(s) in {self.batches} batch(es)"

    def incomplete(self, reason: str) -> QStashRunIncomplete:
        """The error to raise when the job stops early; it carries the running total."""
        if self.mode == MODE_BULK_ACTION:
            so_far = f"So far {self.done_text()}"
            if self.unconfirmed:
                so_far += f"; the last action reports {self.unconfirmed} more processed, not yet confirmed gone"
            if self.left:
                so_far += f"; {self.left} message(s) matched at the last round"
        else:
            so_far = f"Cancelled {self.done_text()} so far"
        return QStashRunIncomplete(
            f"QStash bulk cancel incomplete: {reason}. {so_far}; running the task again continues safely "
            "(already-cancelled messages are gone).",
            self.summary(),
        )


def bulk_cancel_total(bulk_filter: BulkCancelFilter, count: int | None, base_url: str) -> Procedure[BulkCancelAnswer]:
    """
    One bulk cancel as the hook's ``bulk_cancel`` makes it, in one pass (no rounds): the ids split into as
    many synchronous requests as the URL length needs (their counts added), or one filter cancel, which
    joins an identical running one (:func:`~airflow_qstash.runs.join.start_or_join`).
    """
    from airflow_qstash.protocol.messages import ActionStarted, BatchCancelled, bulk_cancel_requests

    requests = bulk_cancel_requests(bulk_filter, count, base_url)
    total = 0
    for params in requests:
        answer = yield from start_or_join(params)
        if isinstance(answer, ActionStarted):
            if len(requests) != 1:
                raise QStashAPIError("QStash answered a split message_ids cancel with a bulk action.")
            return answer
        total += answer.cancelled
    return BatchCancelled(total)
