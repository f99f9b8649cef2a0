"""QStashBulkCancelOperator: cancel the QStash messages a set of (templated) filters selects, in batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_qstash.filters import BULK_CANCEL_FILTERS, BulkCancelFilter
from airflow_qstash.inputs import DEFAULT_ACTION_TIMEOUT
from airflow_qstash.operators._common import QStashFilterOperator
from airflow_qstash.runs.bulk_cancel import BulkCancelRun

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseTrigger


class QStashBulkCancelOperator(QStashFilterOperator):
    """
    Cancel the pending Upstash QStash messages that the filters select, in rounds until a round finds
    nothing left: a batch that cancels 0 (a server that honours ``count``), or a bulk action whose ``total``
    is 0 (today's hosted QStash: a finished action is always followed by this confirming round). The end is
    decided on what is left, never on what QStash reports processed; rounds that leave as much as the round
    before stop the task after 3 of them (``MAX_ROUNDS_WITHOUT_PROGRESS``), naming what is left.

    Values within one list filter are ORed (``labels=["a", "b"]`` is label a *or* b); different filters
    are ANDed. A list filter may be a list or tuple, a single string, a comma-separated string, a JSON
    array or the text Jinja makes of a list (``"['a', 'b']"``); any other rendering (the
    ``<generator object ...>`` that ``| select``, ``| map``, ``| unique`` or ``| reverse`` leave without
    ``| list``, a set, a dict) fails naming its type. Dates may be a datetime, a pendulum DateTime, an
    ISO-8601 string (a rendered ``{{ data_interval_start }}``) or Unix milliseconds; both bounds are
    inclusive.

    Literal or templated: a filter whose value holds a Jinja marker (``{{``, ``{%``, ``{#``, or the DAG's
    own ``jinja_environment_kwargs`` delimiters), or is an ``XComArg`` or other object Airflow resolves,
    is *templated*; anything else is a *literal* and is taken literally (``labels="none"`` is the label
    ``none``). The judgement is made on the raw value the DAG author passed, in ``__init__``.

    Safety: a value the author set is never silently dropped. A literal that is empty (``""``, ``[]``) and
    a template that renders empty (``None``, ``""``, ``"None"``, ``"[]"``) fail before any request, naming
    the field, unless the field is listed in ``optional_filters``: those count as absent when empty.
    With no filter left the task fails unless ``cancel_all=True``, so a form left blank can never widen
    the cancel to the whole account. ``from_date=0`` (since the beginning) and a ``to_date`` at or after
    the task's start select everything and do not count as filters; ``to_date=0`` and any date before
    2000-01-01 fail. A zero-width window (``from_date == to_date``, what Airflow 3's default cron
    timetable renders for the data interval: use ``CronDataIntervalTimetable``) fails too. To make a
    date optional in a params form, list it in ``optional_filters`` or write the fallback into the
    template: ``{{ params.from_date or 0 }}``, ``{{ params.to_date or 'now' }}``.

    Termination: the effective ``to_date`` is the earlier of the one given and the task's start, so
    producers publishing matching messages during the run cannot keep the loop alive (``message_ids``
    runs take no dates); ``max_batches`` bounds the number of requests. Re-running is always safe:
    cancelled messages are gone.

    :param qstash_conn_id: the ``qstash`` connection.
    :param message_ids: cancel exactly these messages; cannot be combined with other filters. (templated)
    :param url_groups: URL group (topic) names to match. (templated)
    :param queue_names: queue names to match. (templated)
    :param urls: destination URLs to match. (templated)
    :param hosts: destination hosts to match. (templated)
    :param paths: destination paths to match. (templated)
    :param labels: labels to match. (templated)
    :param flow_control_keys: flow-control keys to match. (templated)
    :param schedule_ids: schedule ids to match. (templated)
    :param caller_ips: publisher IP addresses to match. (templated)
    :param from_date: cancel messages created at or after this time; ``0`` means since the beginning.
        (templated)
    :param to_date: cancel messages created at or before this time, never later than the task's start
        (the default; ``'now'`` says so explicitly). (templated)
    :param optional_filters: names of the filters above that may be empty (a blank form field, a
        ``None`` param) and then count as absent; every other filter that is set but empty fails the
        task. Unknown names are refused when the DAG is parsed.
    :param batch_size: messages per request, 1..500 (QStash's ``count``). (templated)
    :param max_batches: the most rounds: on a server that honours ``count``, bulk-cancel requests (a
        ``message_ids`` list too long for one URL is split into several requests, and each counts); on
        today's hosted QStash, bulk actions followed. Reaching it with messages left fails the task, and
        a retry continues. ``None`` (or a template that renders empty) means 100,000
        requests, a bound no real job reaches that still stops a server that never answers zero.
        (templated)
    :param cancel_all: allow a run with no filter, which cancels every message created before the task
        started. (templated)
    :param action_timeout: the longest one bulk action (today's hosted QStash) is followed, in seconds or
        as a ``timedelta``; past it the task fails naming the action, which goes on in QStash, and a retry
        joins it. ``None`` (or a template that renders empty) means the default, 6 hours. (templated)
    :param deferrable: run the batch loop in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param durable: on Airflow 3.3+, keep the run in the task state store: the window (``to_date`` pinned
        to the first try's start) before the first request, each bulk action's id before its first poll. A
        retry of the task in the same DAG run re-attaches to the last action by id (no second start) and
        keeps the first try's window; the stored run is deleted when the task succeeds. On older Airflow it
        has no effect (one log line says so) and a retry joins a running action by its filter. Default
        ``True``.
    :return: a dict with ``cancelled`` (messages confirmed gone: a batch's count, or on a bulk-action
        server the drop of ``total`` from one action to the next, not the ``processed`` sum), ``batches``
        (requests), ``rounds``, ``mode`` (``"bulk_action"`` or ``"batched"``: which server generation
        answered), ``action_ids`` (the bulk actions followed), ``left`` (what the last action still found;
        ``None`` on a batched server), ``unconfirmed`` (processed by the last action, not yet confirmed gone;
        0 on success), ``from_date`` and ``to_date`` (the window used, Unix ms), ``filters`` and
        ``duration_seconds``.
    """

    FILTERS = BULK_CANCEL_FILTERS
    FILTER_CLASS = BulkCancelFilter
    RUN_NAME = "bulk cancel"
    ARRIVALS = "messages published"

    template_fields: Sequence[str] = (
        *BULK_CANCEL_FILTERS.names,
        "batch_size",
        "max_batches",
        "cancel_all",
        "action_timeout",
    )
    template_fields_renderers = BULK_CANCEL_FILTERS.renderers
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        qstash_conn_id: str = "qstash_default",
        message_ids: Any = None,
        url_groups: Any = None,
        queue_names: Any = None,
        urls: Any = None,
        hosts: Any = None,
        paths: Any = None,
        labels: Any = None,
        flow_control_keys: Any = None,
        schedule_ids: Any = None,
        caller_ips: Any = None,
        from_date: Any = None,
        to_date: Any = None,
        optional_filters: Sequence[str] | None = None,
        batch_size: int | str = 500,
        max_batches: int | str | None = None,
        cancel_all: bool | str = False,
        action_timeout: float | dt.timedelta | str | None = DEFAULT_ACTION_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            qstash_conn_id=qstash_conn_id,
            optional_filters=optional_filters,
            deferrable=deferrable,
            durable=durable,
            **kwargs,
        )
        self.message_ids = message_ids
        self.url_groups = url_groups
        self.queue_names = queue_names
        self.urls = urls
        self.hosts = hosts
        self.paths = paths
        self.labels = labels
        self.flow_control_keys = flow_control_keys
        self.schedule_ids = schedule_ids
        self.caller_ips = caller_ips
        self.from_date = from_date
        self.to_date = to_date
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.cancel_all = cancel_all
        self.action_timeout = action_timeout

    def _make_run(self, planned: BulkCancelFilter) -> BulkCancelRun:
        return BulkCancelRun(
            planned, batch_size=self.batch_size, max_batches=self.max_batches, action_timeout=self.action_timeout
        )

    def _run_filter(self, run: BulkCancelRun) -> BulkCancelFilter:
        return run.bulk_filter

    def _refuse_unsendable(self, run: BulkCancelRun, base_url: str) -> None:
        from airflow_qstash.protocol.messages import bulk_cancel_requests

        bulk_cancel_requests(run.bulk_filter, run.batch_size, base_url)

    def _trigger(self, run: BulkCancelRun, resume_ids: list[str]) -> BaseTrigger:
        from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

        return QStashBulkCancelTrigger(
            qstash_conn_id=self.qstash_conn_id,
            bulk_filter=run.bulk_filter.to_dict(),
            batch_size=run.batch_size,
            max_batches=run.max_batches,
            action_timeout=run.action_timeout,
            resume_action_ids=resume_ids,
        )

    def _log_plan(self, run: BulkCancelRun) -> None:
        self.log.info(
            "Cancelling QStash messages where %s; at most %d requests (batches of %d where the server honours "
            "count; a server that runs bulk actions ignores batch_size and each request is one round).",
            run.bulk_filter.describe(),
            run.max_batches,
            run.batch_size,
        )

    def _log_done(self, summary: dict[str, Any]) -> None:
        if summary.get("mode") == "bulk_action":
            self.log.info(
                "QStash bulk cancel done: %d message(s) confirmed cancelled in %d round(s) of bulk actions (%s).",
                summary["cancelled"],
                summary.get("rounds", summary["batches"]),
                summary.get("filters", ""),
            )
        else:
            self.log.info(
                "QStash bulk cancel done: %d message(s) cancelled in %d batch(es) (%s).",
                summary["cancelled"],
                summary["batches"],
                summary.get("filters", ""),
            )


__all__ = ["QStashBulkCancelOperator"]
