"""
``QStashDLQDeleteOperator`` and ``QStashDLQRetryOperator``: delete or retry the QStash dead-letter-queue
entries that a set of (templated) filters selects, with the bulk-cancel operator's safety model and its
base's steps (:mod:`airflow_qstash.operators._common`).

Only this module, :mod:`airflow_qstash.runs.dlq`, :mod:`airflow_qstash.runs.dlq_preview`, :mod:`airflow_qstash.filters`
and the operators' shared base (no HTTP client) are imported when a DAG file is parsed; the hook, the wire
and the trigger are imported when the task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import conf

from airflow_qstash.filters import (
    DELETE,
    DLQ_ACTION_FILTERS,
    DLQ_FILTERS,
    RETRY,
    DLQFilter,
)
from airflow_qstash.inputs import parse_bool, retry_overrides, shown_overrides
from airflow_qstash.operators._common import QStashFilterOperator
from airflow_qstash.runs.dlq import DLQDeleteRun, DLQRetryRun, DLQRun
from airflow_qstash.runs.dlq_preview import DLQPreview

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseTrigger


class _QStashDLQOperator(QStashFilterOperator):
    """
    What both DLQ operators share: the DLQ filters as template fields, the bound on requests, the dry run
    (a :class:`~airflow_qstash.runs.dlq_preview.DLQPreview` in place of the run), the trigger, the summary.
    Subclasses name the action (its filter table) and build its run.
    """

    ACTION: ClassVar[str]
    FILTER_CLASS = DLQFilter
    OPTIONAL_NOUN = "field"
    ARRIVALS = "entries that land in the DLQ"

    template_fields: Sequence[str] = (*DLQ_FILTERS.names, "max_requests", "action_timeout", "dry_run")
    template_fields_renderers = DLQ_FILTERS.renderers
    ui_color = "#fde8e8"
    #: The ``dry_run`` argument (a bool or its rendering). It takes the name of ``BaseOperator.dry_run()``,
    #: a method Airflow 3 never calls (Airflow 2's ``airflow tasks test --dry-run`` did).
    dry_run: Any  # type: ignore[assignment]

    def __init__(
        self,
        *,
        qstash_conn_id: str = "qstash_default",
        dlq_ids: Any = None,
        message_ids: Any = None,
        urls: Any = None,
        url_groups: Any = None,
        schedule_ids: Any = None,
        queue_names: Any = None,
        labels: Any = None,
        flow_control_keys: Any = None,
        caller_ips: Any = None,
        response_statuses: Any = None,
        from_date: Any = None,
        to_date: Any = None,
        optional_filters: Sequence[str] | None = None,
        max_requests: int | str | None = None,
        action_timeout: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        durable: bool = True,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            qstash_conn_id=qstash_conn_id,
            optional_filters=optional_filters,
            deferrable=deferrable,
            durable=durable,
            **kwargs,
        )
        self.dry_run = dry_run
        self.dlq_ids = dlq_ids
        self.message_ids = message_ids
        self.urls = urls
        self.url_groups = url_groups
        self.schedule_ids = schedule_ids
        self.queue_names = queue_names
        self.labels = labels
        self.flow_control_keys = flow_control_keys
        self.caller_ips = caller_ips
        self.response_statuses = response_statuses
        self.from_date = from_date
        self.to_date = to_date
        self.max_requests = max_requests
        self.action_timeout = action_timeout

    # ----------------------------------------------------------------------- the run

    def _acts(self) -> bool:
        """A dry run lists what the filters select and acts on nothing (``dry_run``, rendered)."""
        with self._refusing():
            return not parse_bool(self.dry_run, "dry_run")

    def _make_run(self, planned: DLQFilter) -> DLQRun | DLQPreview:
        run = self._make_action_run(planned)
        if self._acts():
            return run
        return DLQPreview(self.ACTION, run.dlq_filter, max_requests=run.max_requests)

    def _make_action_run(self, planned: DLQFilter) -> DLQRun:
        """The delete or retry run of the planned filter."""
        raise NotImplementedError

    def _run_filter(self, run: DLQRun | DLQPreview) -> DLQFilter:
        return run.dlq_filter

    def _refuse_unsendable(self, run: DLQRun | DLQPreview, base_url: str) -> None:
        from airflow_qstash.protocol.dlq import dlq_requests
        from airflow_qstash.protocol.endpoints import DLQ_DELETE, DLQ_DELETE_BULK, DLQ_RETRY, DLQ_RETRY_BULK

        if isinstance(run, DLQPreview):
            endpoint = DLQ_DELETE if self.ACTION == DELETE else DLQ_RETRY
        else:
            # the /bulk paths are the longest a filter goes to: if it fits there it fits every road
            endpoint = DLQ_DELETE_BULK if self.ACTION == DELETE else DLQ_RETRY_BULK
        dlq_requests(run.dlq_filter, endpoint, base_url)

    def _trigger(self, run: DLQRun | DLQPreview, resume_ids: list[str]) -> BaseTrigger:
        from airflow_qstash.triggers.dlq import QStashDLQTrigger

        if isinstance(run, DLQPreview):
            return QStashDLQTrigger(
                action=self.ACTION,
                qstash_conn_id=self.qstash_conn_id,
                dlq_filter=run.dlq_filter.to_dict(),
                max_requests=run.max_requests,
                dry_run=True,
            )
        return QStashDLQTrigger(
            action=self.ACTION,
            qstash_conn_id=self.qstash_conn_id,
            dlq_filter=run.dlq_filter.to_dict(),
            max_requests=run.max_requests,
            options=run.options(),
            resume_action_ids=resume_ids,
        )

    def _log_plan(self, run: DLQRun | DLQPreview) -> None:
        if isinstance(run, DLQPreview):
            self.log.info(
                "QStash DLQ %s DRY RUN of the entries where %s: listing only (GET /v2/dlq, at most %d requests); "
                "nothing is deleted or retried.",
                self.ACTION,
                run.dlq_filter.describe(self.FILTERS),
                run.max_requests,
            )
            return
        self.log.info(
            "QStash DLQ %s of the entries where %s; at most %d requests.",
            self.ACTION,
            run.dlq_filter.describe(self.FILTERS),
            run.max_requests,
        )

    def _log_done(self, summary: dict[str, Any]) -> None:
        if summary.get("dry_run"):
            from airflow_qstash.runs.dlq_preview import log_preview

            log_preview(self.log, summary)
            return
        done = "deleted" if self.ACTION == DELETE else "retried"
        self.log.info(
            "QStash DLQ %s done: %d entries %s in %d request(s) (%s).",
            self.ACTION,
            summary[done],
            done,
            summary["requests"],
            summary.get("filters", ""),
        )


class QStashDLQDeleteOperator(_QStashDLQOperator):
    """
    Delete the QStash dead-letter-queue entries that the filters select when the task starts, and no other.

    What it does, on today's QStash: the filters start an async bulk action (``DELETE /v2/dlq/bulk``),
    followed by its id (``GET /v2/bulkActions/{actionId}``, progress in the log) to ``FINISHED``, then a
    confirming round with the same filters that must select 0: two starts and the polls, whatever N, and no
    ids held in memory. QStash takes an action's entries when it accepts it, so entries that fail while it
    runs (a DLQ entry's ``createdAt`` is the original message's creation time: ``to_date`` alone cannot keep
    out an old message that fails during the task) are not in it; the confirming round's snapshot, taken
    when it starts, includes entries that failed in between. A re-run or retried task meets "identical
    filters return the existing action" and follows it. ``dlq_ids`` go to ``DELETE /v2/dlq/multi``
    (100 ids a request, URLs within 4,096 characters; one id: ``DELETE /v2/dlq/{dlqId}``).

    On an older server without those endpoints (a 404 on the first request, detected once per run; the
    summary's ``mode`` is ``paged``) it uses the deprecated paging API: it lists the matching entries with
    ``GET /v2/dlq`` (100 a page) and keeps their ``dlqId`` (about 130 bytes each: 13 MB per 100,000
    entries), then deletes exactly those ids with ``DELETE /v2/dlq?dlqIds=...``, ``batch_size`` ids a
    request: ``ceil(N / 100) + ceil(N / batch_size)`` requests; entries that land in the DLQ after the
    listing are left for the next run. ``flow_control_keys``, which ``GET /v2/dlq`` does not take, is
    matched there on each listed entry's ``flowControlKey``.

    Filters: values within one list filter are ORed, different filters ANDed; list filters take a list,
    a single value, comma-separated text, a JSON array or a Python list repr (anything else, such as the
    ``<generator object ...>`` a Jinja ``| select`` leaves without ``| list``, fails naming its type).
    Dates take a datetime, an ISO-8601 string (``{{ data_interval_start }}``) or Unix milliseconds, both
    bounds inclusive. ``hosts``/``paths`` are refused when the DAG is parsed: QStash's DLQ endpoints
    reject them.

    Safety, as :class:`~airflow_qstash.operators.qstash.QStashBulkCancelOperator`: a literal is taken
    literally (``labels="none"`` is the label ``none``); a value that is empty, or a template that
    renders empty, fails before any request unless listed in ``optional_filters``; with no filter left the
    task fails unless ``delete_all=True``; ``dlq_ids`` with any other filter fails; ``from_date=0`` and a
    ``to_date`` at or after the task's start select everything and are no filter; a zero-width window
    fails. The effective ``to_date`` is never later than the task's start. Re-running is always safe:
    deleted entries are gone, and a re-run (or a triggerer restart) lists again what is left.

    :param qstash_conn_id: the ``qstash`` connection.
    :param dlq_ids: delete exactly these DLQ entries; cannot be combined with other filters. (templated)
    :param message_ids: the one message id to match (QStash's ``messageId`` takes one). (templated)
    :param urls: destination URLs to match. (templated)
    :param url_groups: URL group (topic) names to match. (templated)
    :param schedule_ids: schedule ids to match. (templated)
    :param queue_names: queue names to match. (templated)
    :param labels: labels to match. (templated)
    :param flow_control_keys: flow-control keys to match. (templated)
    :param caller_ips: publisher IP addresses to match. (templated)
    :param response_statuses: HTTP statuses of the last delivery attempt to match (whole numbers).
        (templated)
    :param from_date: entries created at or after this time; ``0`` means since the beginning. (templated)
    :param to_date: entries created at or before this time, never later than the task's start (the
        default; ``'now'`` says so explicitly). (templated)
    :param optional_filters: names of the filters above that may render empty and then count as absent.
    :param batch_size: entries per request, 1..100 (QStash's ``count``). (templated)
    :param action_timeout: the longest one bulk action (today's QStash: a filter run is one or more
        ``/bulk`` actions) is followed, in seconds or a timedelta; past it the task fails and a re-run
        joins the action, which goes on in QStash. ``None`` (or a template that renders empty): 6 hours.
        (templated)
    :param max_requests: the most requests to send, the listing pages included (a ``dlq_ids`` list is
        split into requests of ``batch_size``, each counts); reaching it with entries left fails the task,
        and a retry continues. Reaching it while listing acts on nothing: give at least
        ``ceil(N / 100) + ceil(N / batch_size)`` for N entries. ``None`` (or a template that renders empty)
        means 100,000. (templated)
    :param delete_all: allow a run with no filter, which deletes every DLQ entry created before the task
        started. (templated)
    :param deferrable: run the loop in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param dry_run: list what the filters select and delete nothing: the XCom and the log show the count,
        the count per response status and a sample of at most 20 entries (ids and URLs); only ``GET /v2/dlq``
        is sent, bounded by ``max_requests``. A bool, or its rendering (``"{{ params.preview_only }}"``).
        (templated)
    :param durable: on Airflow 3.3+, keep the run's window (``to_date`` pinned to the first try's start)
        and its bulk actions in the task state store: a retry in the same DAG run keeps the first try's
        window and re-attaches to a stored action by id; deleted on success. On older Airflow it has no
        effect (one log line says so). Default ``True``.
    :return: a dict with ``deleted`` (on a bulk action: the drop of the matching ``total`` from round to
        round), ``mode`` (``bulk_action``, ``multi`` or ``paged``), ``action_ids``, ``rounds``, ``polls``,
        ``detection_requests`` (the 404s that found an older server), ``requests`` (all others but the
        polls), ``selected`` (the first action's ``total``, the entries listed, or the ``dlq_ids`` given),
        ``list_requests`` (the listing pages among ``requests``), ``from_date`` and ``to_date`` (the window,
        Unix ms), ``filters`` and ``duration_seconds``.
    """

    ACTION: ClassVar[str] = DELETE
    FILTERS = DLQ_ACTION_FILTERS[DELETE]
    RUN_NAME = "DLQ delete"
    template_fields: Sequence[str] = (*_QStashDLQOperator.template_fields, "batch_size", "delete_all")

    def __init__(self, *, batch_size: int | str = 100, delete_all: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.delete_all = delete_all

    def _make_action_run(self, planned: DLQFilter) -> DLQDeleteRun:
        return DLQDeleteRun(
            planned, max_requests=self.max_requests, action_timeout=self.action_timeout, batch_size=self.batch_size
        )


class QStashDLQRetryOperator(_QStashDLQOperator):
    """
    Retry the QStash dead-letter-queue entries that the filters select when the task starts, and no
    other: QStash publishes each again as a new message and removes it from the DLQ.

    What it does: as :class:`QStashDLQDeleteOperator`, with ``POST /v2/dlq/retry/bulk`` (an async bulk
    action and a confirming round: the summary carries counts and ``action_ids``; a bulk action reports
    no per-message ids, so ``message_ids`` is ``None``), ``POST /v2/dlq/retry/multi`` and
    ``POST /v2/dlq/retry/{dlqId}`` for ``dlq_ids`` (the new message ids kept), the overrides as headers on
    each of them. On an older server (``mode`` ``paged``) it lists the ``dlqId`` of every matching entry
    first (``GET /v2/dlq``, 100 a page; about 130 bytes of memory per entry), then retries exactly those
    with ``POST /v2/dlq/retry?dlqIds=...``, 100 ids a request: ``ceil(N / 100) * 2`` requests for N
    entries with short ids; entries that land in the DLQ after the listing are left for the next run.

    Filters, refusals and the pinned ``to_date`` as :class:`QStashDLQDeleteOperator`, with ``retry_all``
    for a run with no filter. A 404 answer (entries that vanished between the listing and the retry:
    deleted or expired meanwhile) is part of the run, not a failure: the id list is narrowed down to the
    ids that are gone, which are skipped and counted in ``vanished``.
    Re-running is always safe: a retried entry has left the DLQ and is not retried twice.

    Overrides of the retried messages' settings are sent as ``Upstash-*`` request headers. (They are
    named ``override_*`` because ``retries`` is the Airflow task's own retry count.)

    :param override_retries: ``Upstash-Retries`` of the new messages, a whole number >= 0 (e.g. 0 for a
        single delivery attempt). (templated)
    :param override_delay: ``Upstash-Delay``: whole seconds >= 0, a timedelta, or ``'30s'``/``'5m'``/
        ``'2h'``/``'1d'``. (templated)
    :param override_timeout: ``Upstash-Timeout``: whole seconds > 0, same forms. (templated)
    :param override_headers: more overrides as a dict (or its JSON text): names must start with
        ``Upstash-``, values hold no line break; a header also given as ``override_retries``/
        ``override_delay``/``override_timeout`` is refused, and ``Upstash-Retries``/``-Delay``/``-Timeout``/
        ``-Method`` given here pass the same checks. Credential values (``*-Authorization``, ``*-Token``,
        ``*-Key``...) are masked in logs and shown as ``***`` in the returned ``overrides``. (templated)
    :param qstash_conn_id: the ``qstash`` connection.
    :param dlq_ids: retry exactly these DLQ entries; cannot be combined with other filters. (templated)
    :param message_ids: the one message id to match (QStash's ``messageId`` takes one). (templated)
    :param urls: destination URLs to match. (templated)
    :param url_groups: URL group (topic) names to match. (templated)
    :param schedule_ids: schedule ids to match. (templated)
    :param queue_names: queue names to match. (templated)
    :param labels: labels to match. (templated)
    :param flow_control_keys: flow-control keys to match. (templated)
    :param caller_ips: publisher IP addresses to match. (templated)
    :param response_statuses: HTTP statuses of the last delivery attempt to match (whole numbers).
        (templated)
    :param from_date: entries created at or after this time; ``0`` means since the beginning. (templated)
    :param to_date: entries created at or before this time, never later than the task's start (the
        default; ``'now'`` says so explicitly). (templated)
    :param optional_filters: filters, and the ``override_*`` fields, that may render empty and then count as
        not given (a blank form field).
    :param action_timeout: the longest one bulk action (today's QStash: a filter run is one or more
        ``/bulk`` actions) is followed, in seconds or a timedelta; past it the task fails and a re-run
        joins the action, which goes on in QStash. ``None`` (or a template that renders empty): 6 hours.
        (templated)
    :param max_requests: the most requests to send, the listing pages included (a ``dlq_ids`` list is
        split into requests of 100, and the requests sent again after a 404 count too); reaching it with
        entries left fails the task, and a retry continues; reaching it while listing acts on nothing.
        ``None`` (or a template that renders empty) means 100,000. (templated)
    :param retry_all: allow a run with no filter, which retries every DLQ entry created before the task
        started. (templated)
    :param deferrable: run the loop in the triggerer instead of holding a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param dry_run: list what the filters select and retry nothing, as for
        :class:`QStashDLQDeleteOperator`. (templated)
    :param durable: as for :class:`QStashDLQDeleteOperator`. Default ``True``.
    :return: a dict with ``retried``, ``message_ids`` (the new messages' ids; ``None`` when more than
        1,000 were retried: ``retried`` is their count), ``deduplicated``, ``vanished``,
        ``not_found_answers``, ``overrides``, ``requests``, ``selected``, ``list_requests``, ``from_date``,
        ``to_date``, ``filters`` and ``duration_seconds``.
    """

    ACTION: ClassVar[str] = RETRY
    FILTERS = DLQ_ACTION_FILTERS[RETRY]
    RUN_NAME = "DLQ retry"
    OPTIONAL_EXTRAS: ClassVar[tuple[str, ...]] = (
        "override_retries",
        "override_delay",
        "override_timeout",
        "override_headers",
    )
    template_fields: Sequence[str] = (*_QStashDLQOperator.template_fields, *OPTIONAL_EXTRAS, "retry_all")
    template_fields_renderers = {**DLQ_FILTERS.renderers, "override_headers": "json"}

    def __init__(
        self,
        *,
        override_retries: int | str | None = None,
        override_delay: Any = None,
        override_timeout: Any = None,
        override_headers: dict[str, Any] | str | None = None,
        retry_all: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.override_retries = override_retries
        self.override_delay = override_delay
        self.override_timeout = override_timeout
        self.override_headers = override_headers
        self.retry_all = retry_all

    def _make_action_run(self, planned: DLQFilter) -> DLQRetryRun:
        given = {name.removeprefix("override_"): self._rendered_extra(name) for name in self.OPTIONAL_EXTRAS}
        headers = retry_overrides(**given, field_prefix="override_")
        return DLQRetryRun(planned, max_requests=self.max_requests, action_timeout=self.action_timeout, headers=headers)

    def _log_plan(self, run: DLQRun | DLQPreview) -> None:
        super()._log_plan(run)
        if isinstance(run, DLQRetryRun) and run.headers:
            self.log.info("Retried messages get these overrides: %s.", shown_overrides(run.headers))


__all__ = ["QStashDLQDeleteOperator", "QStashDLQRetryOperator"]
