"""
``QStashDLQDeleteOperator`` and ``QStashDLQRetryOperator``: delete or retry the QStash dead-letter-queue
entries that a set of (templated) filters selects, with the bulk-cancel operator's safety model.

Only this module, :mod:`airflow_qstash.runs.dlq`, :mod:`airflow_qstash.filters` and the operators' shared base
(no HTTP client) are imported when a DAG file is parsed; the hook and the trigger are imported in ``execute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import conf

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import DLQ_FILTERS
from airflow_qstash.inputs import parse_bool, renders_empty, retry_overrides, shown_overrides
from airflow_qstash.operators._common import QStashFilterOperator, task_start_ms
from airflow_qstash.runs.dlq import (
    DELETE,
    RETRY,
    SELECT_ALL_FLAGS,
    DLQRetryRun,
    DLQRun,
    make_run,
    read_rendered_dlq_filter,
    refuse_rejected_filters,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_qstash.runs.dlq_preview import DLQPreview


class _QStashDLQOperator(QStashFilterOperator):
    """
    What both DLQ operators share: the DLQ filters as template fields, reading them after rendering, the
    bound on requests, deferral, the summary. Subclasses name the action and build its run.
    """

    ACTION: ClassVar[str]
    #: The fields besides the filters that may be named in ``optional_filters``.
    OPTIONAL_EXTRAS: ClassVar[tuple[str, ...]] = ()

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
        with self._refusing():
            refuse_rejected_filters(kwargs)
        super().__init__(**kwargs)
        self.durable = self._read_durable(durable)
        self.dry_run = dry_run
        self.qstash_conn_id = qstash_conn_id
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
        self.deferrable = deferrable
        with self._refusing():
            self.optional_filters = self._read_optional_filters(
                optional_filters, (*DLQ_FILTERS.names, *self.OPTIONAL_EXTRAS), noun="field"
            )
        self._run: DLQRun | DLQPreview | None = None
        self._task_start_ms: int | None = None

    # ----------------------------------------------------------------------- reading rendered values

    def _judged_fields(self) -> Sequence[str]:
        return (*DLQ_FILTERS.names, *self.OPTIONAL_EXTRAS)

    def _select_all(self) -> Any:
        """The rendered ``delete_all``/``retry_all``."""
        return getattr(self, SELECT_ALL_FLAGS[self.ACTION])

    def _rendered_option(self, name: str) -> Any:
        """
        A rendered non-filter value the author may leave unset: ``None`` if unset, or if templated, empty
        and listed in ``optional_filters``; an empty value otherwise is refused (never silently dropped).
        """
        value = getattr(self, name)
        if name not in self.set_by_author:
            return None
        templated = name in self.templated
        if renders_empty(value, templated=templated):
            if templated and name in self.optional_filters:
                return None
            how = "is templated but rendered empty" if templated else "is empty"
            raise QStashInputError(
                f"{name} {how} ({value!r}): give it a value, leave it unset (None), or list '{name}' in "
                f"optional_filters if an empty {name} should mean 'not given'."
            )
        return value

    def plan(self, now_ms: int) -> DLQRun:
        """Read the rendered fields into a validated run; every refusal happens here, before any request."""
        with self._refusing():
            dlq_filter = read_rendered_dlq_filter(
                self.ACTION,
                {name: getattr(self, name) for name in DLQ_FILTERS.names},
                set_by_author=[name for name in self.set_by_author if name in DLQ_FILTERS],
                templated=[name for name in self.templated if name in DLQ_FILTERS],
                optional=[name for name in self.optional_filters if name in DLQ_FILTERS],
                select_all=self._select_all(),
                now_ms=now_ms,
            )
            self._task_start_ms = now_ms
            return make_run(
                self.ACTION,
                dlq_filter,
                max_requests=self.max_requests,
                action_timeout=self.action_timeout,
                **self._run_options(),
            )

    def _run_options(self) -> dict[str, Any]:
        """The action's own run options from the rendered fields (``batch_size``, the overrides)."""
        return {}

    # ----------------------------------------------------------------------- running

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_qstash.hooks.qstash import QStashHook
        from airflow_qstash.protocol.dlq import dlq_requests
        from airflow_qstash.protocol.endpoints import DLQ_DELETE_BULK, DLQ_RETRY_BULK

        hook = QStashHook(qstash_conn_id=self.qstash_conn_id)
        with self._refusing():
            dry_run = parse_bool(self.dry_run, "dry_run")
        if dry_run:
            return self._preview(hook, context)
        memory = self._open_memory(context)
        run, resume_ids = self._plan_durably(context, memory)
        self._run = run
        with self._refusing():
            # Read the connection and encode once, so a bad connection or a filter too long for a URL
            # fails here: before any request, and before deferring.
            # (the /bulk paths are the longest a filter goes to: if it fits there it fits every road)
            dlq_requests(
                run.dlq_filter, DLQ_DELETE_BULK if self.ACTION == DELETE else DLQ_RETRY_BULK, hook.config.base_url
            )
        self._log_plan(run)
        self._remember_plan(memory, run, resume_ids)
        self._resume(run, resume_ids, memory)
        if self.deferrable:
            from airflow_qstash.triggers.dlq import QStashDLQTrigger

            self.defer(
                trigger=QStashDLQTrigger(
                    action=self.ACTION,
                    qstash_conn_id=self.qstash_conn_id,
                    dlq_filter=run.dlq_filter.to_dict(),
                    max_requests=run.max_requests,
                    options=run.options(),
                    resume_action_ids=resume_ids,
                ),
                method_name="execute_complete",
            )
        steps = run.steps(hook.config.base_url, log=self.log, poll_interval_max=hook.config.poll_interval_max)
        summary = self._drive(hook, steps)
        memory.forget()
        return self._finish(summary)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Turn the trigger's event into the same XCom value as the synchronous path, or fail the task; the
        event's action ids (if any) go to the task state store first, and a success deletes the stored run.
        """
        if not event.get("dry_run"):
            self._complete_durably(context, event)
        return self._finish(self._event_summary(event, f"DLQ {self.ACTION}"))

    # ----------------------------------------------------------------------- dry run

    def _preview(self, hook: Any, context: Context) -> dict[str, Any]:
        """
        List what the filters select (count, per response status, a bounded sample) and act on nothing: no
        delete or retry is sent and the task state store is not touched.
        """
        from airflow_qstash.protocol.dlq import dlq_requests
        from airflow_qstash.protocol.endpoints import DLQ_DELETE, DLQ_RETRY
        from airflow_qstash.runs.dlq_preview import DLQPreview

        run = self.plan(task_start_ms(context))
        with self._refusing():
            dlq_requests(run.dlq_filter, DLQ_DELETE if self.ACTION == DELETE else DLQ_RETRY, hook.config.base_url)
        preview = DLQPreview(self.ACTION, run.dlq_filter, max_requests=run.max_requests)
        self._run = preview
        self.log.info(
            "QStash DLQ %s DRY RUN of the entries where %s: listing only (GET /v2/dlq, at most %d requests); "
            "nothing is deleted or retried.",
            self.ACTION,
            run.dlq_filter.describe(),
            run.max_requests,
        )
        self._log_pinned_to_date(run.dlq_filter.to_date, "entries that land in the DLQ")
        if self.deferrable:
            from airflow_qstash.triggers.dlq import QStashDLQTrigger

            self.defer(
                trigger=QStashDLQTrigger(
                    action=self.ACTION,
                    qstash_conn_id=self.qstash_conn_id,
                    dlq_filter=run.dlq_filter.to_dict(),
                    max_requests=run.max_requests,
                    dry_run=True,
                ),
                method_name="execute_complete",
            )
        return self._finish(self._drive(hook, preview.steps(hook.config.base_url, log=self.log)))

    # ----------------------------------------------------------------------- durable runs

    def _plan_key(self, run: Any) -> dict[str, Any]:
        return {"action": f"dlq_{self.ACTION}", "filter": run.dlq_filter.to_dict()}

    @staticmethod
    def _resume(run: Any, resume_ids: list[str], memory: Any) -> None:
        """
        Hand the run the stored action ids (a filter run re-attaches to the last by id) and the store (each
        action's id is stored before its first poll).
        """
        run.resume_action_ids = list(resume_ids)
        run.on_action = memory.add_actions

    def _finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        if summary.get("dry_run"):
            from airflow_qstash.runs.dlq_preview import log_preview

            log_preview(self.log, summary)
            return summary
        done = "deleted" if self.ACTION == DELETE else "retried"
        self.log.info(
            "QStash DLQ %s done: %d entries %s in %d request(s) (%s).",
            self.ACTION,
            summary[done],
            done,
            summary["requests"],
            summary.get("filters", ""),
        )
        return summary

    def _log_plan(self, run: DLQRun) -> None:
        self.log.info(
            "QStash DLQ %s of the entries where %s; at most %d requests.",
            self.ACTION,
            run.dlq_filter.describe(),
            run.max_requests,
        )
        self._log_pinned_to_date(run.dlq_filter.to_date, "entries that land in the DLQ")


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
    template_fields: Sequence[str] = (*_QStashDLQOperator.template_fields, "batch_size", "delete_all")

    def __init__(self, *, batch_size: int | str = 100, delete_all: bool | str = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.delete_all = delete_all

    def _run_options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}


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

    def _run_options(self) -> dict[str, Any]:
        given = {name: self._rendered_option(name) for name in self.OPTIONAL_EXTRAS}
        overrides = {name.removeprefix("override_"): value for name, value in given.items()}
        return {"headers": retry_overrides(**overrides, field_prefix="override_")}

    def _log_plan(self, run: DLQRun) -> None:
        super()._log_plan(run)
        assert isinstance(run, DLQRetryRun)
        if run.headers:
            self.log.info("Retried messages get these overrides: %s.", shown_overrides(run.headers))


__all__ = ["QStashDLQDeleteOperator", "QStashDLQRetryOperator"]
