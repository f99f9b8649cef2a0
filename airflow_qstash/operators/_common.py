"""
The one base of the QStash filter operators (bulk cancel, DLQ delete and retry): it owns ``execute``
and ``execute_complete``, the same steps for every operator:

1. read: the raw values are judged set-or-not and templated-or-literal before rendering
   (:attr:`~QStashFilterOperator.set_by_author`, :attr:`~QStashFilterOperator.templated`);
2. refuse: every refusal is a :class:`~airflow_qstash.exceptions.QStashInputError`, raised before the
   first request inside :meth:`~QStashFilterOperator._refusing`, which fails the task without retries;
3. plan: the rendered filters are read into the operator's value object with its table
   (:meth:`~QStashFilterOperator.plan`), ``to_date`` pinned to the task's start (a durable retry's:
   the first try's), and the run is built from it;
4. run on the worker, or defer to the operator's trigger;
5. complete: the summary (from the run, or the trigger's event) is logged and becomes the XCom value.

A subclass declares its filter table (``FILTERS``, whose ``all_flag`` names its ``cancel_all``/
``delete_all``/``retry_all`` argument), its value object, its run (built from the planned filter, checked
sendable, its trigger) and its summary line; nothing else.

Imported when a DAG file is parsed: nothing here imports an HTTP client, a hook or a trigger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_qstash.durable import RunMemory, RunRecord, read_durable
from airflow_qstash.exceptions import QStashInputError, QStashRunIncomplete
from airflow_qstash.filters import FilterTable, FilterValue
from airflow_qstash.inputs import (
    JINJA_MARKERS,
    MANUAL_RUN_HINT,
    TO_DATE,
    is_templated,
    now_ms,
    read_rendered_filter,
    renders_empty,
    to_unix_ms,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import BaseTrigger, Context

    from airflow_qstash.hooks.qstash import QStashHook


class FilterRun(Protocol):
    """What the base needs of a planned run (a bulk-cancel or DLQ run, a DLQ preview)."""

    def steps(self, base_url: str, *, log: Any = None, poll_interval_max: float = ...) -> Any:
        """The run as a sans-IO procedure, returning its summary."""

    def stop(self) -> None:
        """Stop before the next request (thread-safe)."""


def task_start_ms(context: Context) -> int:
    """The task instance's start in Unix ms (now, outside a task run)."""
    start = getattr(context.get("ti"), "start_date", None)
    return now_ms() if start is None else to_unix_ms(start, "task start") or 0


def jinja_markers(dag: Any) -> tuple[str, ...]:
    """The strings that start a template in ``dag``: Jinja's defaults, or its ``jinja_environment_kwargs``."""
    options = getattr(dag, "jinja_environment_kwargs", None) or {}
    keys = ("variable_start_string", "block_start_string", "comment_start_string")
    return tuple(str(options.get(key, default)) for key, default in zip(keys, JINJA_MARKERS, strict=True))


class QStashFilterOperator(BaseOperator):
    """
    The base of the operators that act on what a set of (templated) filters selects; it owns the steps
    (see the module): :meth:`execute` and :meth:`execute_complete` are its alone.

    A subclass declares :attr:`FILTERS`, :attr:`FILTER_CLASS`, :attr:`RUN_NAME` and :attr:`ARRIVALS` (and
    :attr:`OPTIONAL_EXTRAS`, :attr:`OPTIONAL_NOUN` where it differs), assigns its own arguments in its
    ``__init__`` (its template fields among them) and passes the shared ones on, and gives its run:
    :meth:`_make_run`, :meth:`_run_filter`, :meth:`_refuse_unsendable`, :meth:`_trigger`, and its log
    lines :meth:`_log_plan` and :meth:`_log_done`. Every refusal is a
    :class:`~airflow_qstash.exceptions.QStashInputError` raised inside :meth:`_refusing`, which fails the
    task without retries.
    """

    #: The operator's filters: its filter template fields, what ``optional_filters`` may name, and the
    #: name of its all-flag argument (``all_flag``: ``cancel_all``), which the refusals say.
    FILTERS: ClassVar[FilterTable]
    #: The value object the rendered filters are read into.
    FILTER_CLASS: ClassVar[type[FilterValue]]
    #: The fields besides the filters that ``optional_filters`` may name (and that may render empty).
    OPTIONAL_EXTRAS: ClassVar[tuple[str, ...]] = ()
    #: What ``optional_filters`` names, in its refusals.
    OPTIONAL_NOUN: ClassVar[str] = "filter"
    #: The run, in messages (``bulk cancel``, ``DLQ delete``); its snake_case form is the stored plan's action.
    RUN_NAME: ClassVar[str]
    #: What arrives during a run and is left for the next one, in the pinned-``to_date`` log line.
    ARRIVALS: ClassVar[str]

    def __init__(
        self,
        *,
        qstash_conn_id: str,
        optional_filters: Sequence[str] | None,
        deferrable: bool,
        durable: bool,
        **kwargs: Any,
    ) -> None:
        with self._refusing():
            # a filter the endpoints reject (the DLQ's hosts) would otherwise be an unknown argument
            self.FILTERS.refuse_rejected(kwargs)
        super().__init__(**kwargs)
        with self._refusing():
            self.durable = read_durable(durable)
            self.optional_filters = self._read_optional_filters(optional_filters)
        self.qstash_conn_id = qstash_conn_id
        self.deferrable = deferrable
        self._run: FilterRun | None = None
        self._task_start_ms: int | None = None

    # ----------------------------------------------------------------------- the steps

    def execute(self, context: Context) -> dict[str, Any]:
        """Plan the run (every refusal before any request), then run it here or defer it to the trigger."""
        hook = self._hook()
        memory = RunMemory.open(context, durable=self.durable and self._acts(), log=self.log)
        with self._refusing():
            run, resume_ids = self._plan_durably(context, memory)
            # a bad connection or a filter too long for a URL fails here: before any request or deferral
            self._refuse_unsendable(run, hook.config.base_url)
        self._log_plan(run)
        self._log_pinned_to_date(getattr(self._run_filter(run), TO_DATE))
        if self._task_start_ms is not None:
            memory.remember(RunRecord(self._task_start_ms, self._plan_key(run), list(resume_ids)))
        if memory.enabled:
            run.resume_action_ids = list(resume_ids)
            run.on_action = memory.add_actions
        summary = self._run_or_defer(hook, run, lambda: self._trigger(run, resume_ids))
        memory.forget()
        return self._finish(summary)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Turn the trigger's event into the same XCom value as the run on the worker, or fail the task; the
        event's action ids go to the task state store first (a retry re-attaches to the last by id), and a
        success deletes the stored run. A dry run's event touches no store.
        """
        if not event.get("dry_run"):
            self._complete_durably(context, event)
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or f"QStash {self.RUN_NAME} trigger failed: {event!r}")
        return self._finish({k: v for k, v in event.items() if k != "status"})

    def plan(self, now_ms: int) -> Any:
        """
        Read the rendered fields into the operator's validated run, with ``now_ms`` as the task's start;
        every refusal happens here, before any request (a
        :class:`~airflow_qstash.exceptions.QStashInputError`; :meth:`execute` fails the task with it).
        """
        table = self.FILTERS
        value = read_rendered_filter(
            {name: getattr(self, name) for name in table.names},
            set_by_author=[name for name in self.set_by_author if name in table],
            templated=[name for name in self.templated if name in table],
            optional=[name for name in self.optional_filters if name in table],
            select_all=getattr(self, table.all_flag),
            now_ms=now_ms,
            filter_class=self.FILTER_CLASS,
            table=table,
        )
        self._task_start_ms = now_ms
        return self._make_run(value)

    def _run_or_defer(self, hook: QStashHook, run: FilterRun, trigger: Callable[[], BaseTrigger]) -> dict[str, Any]:
        """
        Defer to ``trigger()`` when ``deferrable`` (this raises; :meth:`execute_complete` goes on), else
        drive the run on the worker and return its summary. A run that stopped early
        (:class:`~airflow_qstash.exceptions.QStashRunIncomplete`: the bound spent, killed, a request failed
        for good) fails the task with its totals so far (retried); a connection mistake found on the way
        fails it without retries. The hook's session is closed either way.
        """
        self._run = run
        if self.deferrable:
            self.defer(trigger=trigger(), method_name="execute_complete")
        config = hook.config
        try:
            with self._refusing():
                return hook.drive(run.steps(config.base_url, log=self.log, poll_interval_max=config.poll_interval_max))
        except QStashRunIncomplete as err:
            raise AirflowException(str(err)) from err
        finally:
            hook.close()

    def _finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Log the run's summary (:meth:`_log_done`) and return it: the XCom value."""
        self._log_done(summary)
        return summary

    def on_kill(self) -> None:
        """Stop the run before its next request; the request in flight finishes."""
        if self._run is not None:
            self._run.stop()

    # ----------------------------------------------------------------------- what a subclass declares

    def _acts(self) -> bool:
        """Whether the run acts on what it selects; a dry run (the DLQ's) lists only and keeps no state."""
        return True

    def _make_run(self, planned: Any) -> FilterRun:
        """The run of the planned filter (a value of :attr:`FILTER_CLASS`), with the operator's other options."""
        raise NotImplementedError

    def _run_filter(self, run: Any) -> FilterValue:
        """The planned filter a run of :meth:`_make_run` carries."""
        raise NotImplementedError

    def _refuse_unsendable(self, run: Any, base_url: str) -> None:
        """Refuse a run whose requests cannot be sent to ``base_url`` (a filter too long for a URL)."""
        raise NotImplementedError

    def _trigger(self, run: Any, resume_ids: list[str]) -> BaseTrigger:
        """The trigger that drives ``run`` in the triggerer (imported here, never at DAG parse time)."""
        raise NotImplementedError

    def _log_plan(self, run: Any) -> None:
        """Log what the run will do, before its first request."""
        raise NotImplementedError

    def _log_done(self, summary: dict[str, Any]) -> None:
        """Log the run's summary."""
        raise NotImplementedError

    # ----------------------------------------------------------------------- reading the raw values

    def _hook(self) -> QStashHook:
        from airflow_qstash.hooks.qstash import QStashHook

        return QStashHook(qstash_conn_id=self.qstash_conn_id)

    def _judged_fields(self) -> tuple[str, ...]:
        """The fields whose raw values are judged set-or-not and templated-or-literal: the filters and
        :attr:`OPTIONAL_EXTRAS`; the same names ``optional_filters`` takes."""
        return (*self.FILTERS.names, *self.OPTIONAL_EXTRAS)

    def _judgement(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """
        ``(set_by_author, templated)``, judged once on the raw values: when first asked, which is before
        rendering (:meth:`render_template_fields` asks first). No subclass has to remember to call it.
        """
        judged = self.__dict__.get("_raw_judgement")
        if judged is None:
            judged = self._set_and_templated(self._judged_fields())
            self.__dict__["_raw_judgement"] = judged
        return judged

    @property
    def set_by_author(self) -> tuple[str, ...]:
        """The judged fields the DAG author set (not ``None``), judged on the raw values."""
        return self._judgement()[0]

    @property
    def templated(self) -> tuple[str, ...]:
        """Of :attr:`set_by_author`, the templated ones (the rest are literals, taken literally)."""
        return self._judgement()[1]

    def _set_and_templated(self, names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """
        Of ``names``, the fields the author set (not ``None``), and of those the templated ones, judged on
        the raw values before Airflow renders them (see :func:`~airflow_qstash.inputs.is_templated`), with
        the DAG's own Jinja delimiters when it has any. The rest are literals, taken literally.
        """
        markers = jinja_markers(self.dag if self.has_dag() else None)
        set_by_author = tuple(name for name in names if getattr(self, name) is not None)
        return set_by_author, tuple(name for name in set_by_author if is_templated(getattr(self, name), markers))

    def _read_optional_filters(self, names: Any) -> tuple[str, ...]:
        """
        Validate ``optional_filters``: a list (tuple, set) of the judged fields' names, returned in their
        order; a string, any other type or an unknown name is refused when the DAG is parsed.
        """
        known, noun = self._judged_fields(), self.OPTIONAL_NOUN
        if names is None:
            return ()
        if isinstance(names, str) or not isinstance(names, list | tuple | set | frozenset):
            raise QStashInputError(
                f"optional_filters must be a list of {noun} names (e.g. ['labels', 'queue_names']), not {names!r}."
            )
        unknown = [name for name in names if name not in known]
        if unknown:
            raise QStashInputError(
                f"optional_filters names unknown {noun}(s) {unknown}; known {noun}s: {', '.join(known)}."
            )
        return tuple(name for name in known if name in set(names))

    def _rendered_extra(self, name: str) -> Any:
        """
        A rendered field of :attr:`OPTIONAL_EXTRAS`: ``None`` if unset, or if templated, empty and listed in
        ``optional_filters``; an empty value otherwise is refused (never silently dropped).
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

    @contextmanager
    def _refusing(self) -> Iterator[None]:
        """
        The one place an input refusal (:class:`~airflow_qstash.exceptions.QStashInputError`, a connection
        mistake included) becomes an ``AirflowFailException``: a retry cannot fix it, so Airflow does not
        retry the task. The original stays the exception's ``__cause__``.
        """
        try:
            yield
        except QStashInputError as err:
            raise AirflowFailException(str(err)) from err

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render as usual; a date template that is undefined on a manual run fails with the reason."""
        import jinja2

        self._judgement()  # judged on the raw values, before they are rendered
        try:
            super().render_template_fields(context, jinja_env)
        except jinja2.UndefinedError as err:
            if "data_interval" not in str(err):
                raise
            with self._refusing():
                raise QStashInputError(f"A date template cannot render ({err}). {MANUAL_RUN_HINT}") from err

    def _log_pinned_to_date(self, to_date: int | None) -> None:
        """Log that ``to_date`` (the planned filter's) was pinned to the task's start, when it was."""
        if to_date is not None and to_date == self._task_start_ms:
            self.log.info(
                "to_date pinned to the task's start (%d ms), the latest it may be, so %s during the run are left "
                "for the next run and the loop ends.",
                to_date,
                self.ARRIVALS,
            )

    # ----------------------------------------------------------------------- durable runs

    def _plan_key(self, run: Any) -> dict[str, Any]:
        """What makes two tries the same run: the action and the planned filter."""
        return {"action": self.RUN_NAME.lower().replace(" ", "_"), "filter": self._run_filter(run).to_dict()}

    def _plan_durably(self, context: Context, memory: RunMemory) -> tuple[Any, list[str]]:
        """
        Plan the run from the rendered fields (see :meth:`plan`): with the first try's start when an
        earlier try of this task instance stored the same plan (its window is kept, ``to_date`` is not
        re-pinned to this try's start), and the action ids it stored; else with this try's start and no
        ids. Every refusal happens here, before any request.
        """
        record = memory.recall()
        if record is not None:
            run = self.plan(record.task_start_ms)
            key = self._plan_key(run)
            if record.same_plan(key):
                self.log.info(
                    "Retry of a durable run (task state store): keeping the first try's window (from_date=%s, "
                    "to_date=%s, pinned at the first try's start %d ms, not this try's) and %s.",
                    key["filter"].get("from_date"),
                    key["filter"].get("to_date"),
                    record.task_start_ms,
                    f"re-attaching to bulk action {record.action_ids[-1]} by its id"
                    if record.action_ids
                    else "no bulk action stored yet",
                )
                return run, list(record.action_ids)
            self.log.warning(
                "The task state store holds a run with another plan than this try's (the DAG changed between "
                "tries?): it is replaced, and this try plans from its own start."
            )
        return self.plan(task_start_ms(context)), []

    def _complete_durably(self, context: Context, event: dict[str, Any]) -> None:
        """
        After the trigger's event: a success deletes the stored run; any other event stores the action ids
        it carries (a retry re-attaches to the last by id).
        """
        memory = RunMemory(context.get("task_state_store") if self.durable else None, self.log)
        if event.get("status") == "success":
            memory.forget()
            return
        memory.record = memory.recall()
        memory.add_actions(event.get("action_ids"))


__all__ = ["QStashFilterOperator", "jinja_markers", "task_start_ms"]
