"""
What the QStash filter operators (bulk cancel, DLQ delete and retry) share: what they do before the first
request, and what they do around their run.

* :meth:`QStashFilterOperator._refusing`: the one place an input refusal
  (:class:`~airflow_qstash.exceptions.QStashInputError`) becomes an ``AirflowFailException`` (no retries).
* :func:`task_start_ms`: the task's start, where ``to_date`` is pinned.
* :class:`QStashFilterOperator`: the literal-or-templated judgement on the raw values, ``optional_filters``,
  refusals raised as the operator's own type, rendering that explains a missing data interval, the
  pinned-``to_date`` log line, driving the run on the worker, the trigger's event, ``on_kill``.

Imported when a DAG file is parsed: nothing here imports an HTTP client, a hook or a trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_qstash.durable import RunMemory, RunRecord, read_durable
from airflow_qstash.exceptions import QStashInputError, QStashRunIncomplete
from airflow_qstash.inputs import JINJA_MARKERS, MANUAL_RUN_HINT, is_templated, now_ms, to_unix_ms

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_qstash.hooks.qstash import QStashHook
    from airflow_qstash.protocol.calls import Procedure


class _StoppableRun(Protocol):
    """A run that ``on_kill`` can ask to stop before its next request."""

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
    The base of the operators that act on what a set of (templated) filters selects. A subclass declares
    its fields and template fields, plans a run from the rendered values and drives it; this class holds
    the rules they share, so that each refusal reads the same whichever operator raises it.

    A subclass sets ``_run`` and ``_task_start_ms`` (``None`` until planned). Every refusal is a
    :class:`~airflow_qstash.exceptions.QStashInputError` raised inside :meth:`_refusing`, which fails the
    task without retries.
    """

    _run: _StoppableRun | None
    _task_start_ms: int | None
    durable: bool

    # ----------------------------------------------------------------------- durable runs

    def _read_durable(self, value: Any) -> bool:
        """``durable`` as given, refused when it is not a bool (it is not templated)."""
        with self._refusing():
            return read_durable(value)

    def _plan_key(self, run: Any) -> dict[str, Any]:
        """What makes two tries the same run: the planned filter, and the action (a subclass says)."""
        raise NotImplementedError

    def _open_memory(self, context: Context) -> RunMemory:
        """The task state store record of this run (a no-op memory when not durable, with its one log line)."""
        return RunMemory.open(context, durable=self.durable, log=self.log)

    def _plan_durably(self, context: Context, memory: RunMemory) -> tuple[Any, list[str]]:
        """
        Plan the run from the rendered fields (see ``plan``): with the first try's start when an earlier
        try of this task instance stored the same plan (its window is kept, ``to_date`` is not re-pinned to
        this try's start), and the action ids it stored; else with this try's start and no ids. Every
        refusal happens here, before any request.
        """
        record = memory.recall()
        if record is not None:
            run = self.plan(record.task_start_ms)  # type: ignore[attr-defined]
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
        return self.plan(task_start_ms(context)), []  # type: ignore[attr-defined]

    def _remember_plan(self, memory: RunMemory, run: Any, action_ids: list[str]) -> None:
        """Store the run's window, plan and known action ids before its first request (or deferral)."""
        if self._task_start_ms is not None:
            memory.remember(RunRecord(self._task_start_ms, self._plan_key(run), list(action_ids)))

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

    def _judged_fields(self) -> Sequence[str]:
        """The fields whose raw values are judged set-or-not and templated-or-literal (the filters, and any
        other field a subclass lets render empty, such as the retry overrides)."""
        raise NotImplementedError

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
        the raw values before Airflow renders them (see :func:`~airflow_qstash.filters.is_templated`), with
        the DAG's own Jinja delimiters when it has any. The rest are literals, taken literally.
        """
        markers = jinja_markers(self.dag if self.has_dag() else None)
        set_by_author = tuple(name for name in names if getattr(self, name) is not None)
        return set_by_author, tuple(name for name in set_by_author if is_templated(getattr(self, name), markers))

    def _read_optional_filters(self, names: Any, known: Sequence[str], *, noun: str) -> tuple[str, ...]:
        """
        Validate ``optional_filters``: a list (tuple, set) of ``known`` names, returned in ``known`` order; a
        string, any other type or an unknown name is refused when the DAG is parsed.

        :param names: ``optional_filters`` as given.
        :param known: the names the operator accepts there.
        :param noun: what those names are called in the refusal (``filter``, ``field``).
        """
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

    def _log_pinned_to_date(self, to_date: int | None, arrivals: str) -> None:
        """
        Log that ``to_date`` was pinned to the task's start, when it was.

        :param to_date: the planned filter's ``to_date``.
        :param arrivals: what arrives during the run and is left alone (``messages published``).
        """
        if to_date is not None and to_date == self._task_start_ms:
            self.log.info(
                "to_date pinned to the task's start (%d ms), the latest it may be, so %s during the run are left "
                "for the next run and the loop ends.",
                to_date,
                arrivals,
            )

    def _drive(self, hook: QStashHook, steps: Procedure[dict[str, Any]]) -> dict[str, Any]:
        """
        Drive the run's procedure on the worker and return its summary; a run that stopped early
        (:class:`~airflow_qstash.exceptions.QStashRunIncomplete`: the bound spent, killed, a request failed
        for good) fails the task with its totals so far (retried), a connection mistake found on the way
        fails it without retries. The hook's session is closed either way.
        """
        try:
            with self._refusing():
                return hook.drive(steps)
        except QStashRunIncomplete as err:
            raise AirflowException(str(err)) from err
        finally:
            hook.close()

    @staticmethod
    def _event_summary(event: dict[str, Any], what: str) -> dict[str, Any]:
        """
        The summary a trigger's success event carries; any other event fails the task with its message.

        :param event: the trigger's event.
        :param what: the run, for a failure without a message (``bulk cancel``, ``DLQ delete``).
        """
        if event.get("status") != "success":
            raise AirflowException(event.get("message") or f"QStash {what} trigger failed: {event!r}")
        return {k: v for k, v in event.items() if k != "status"}

    def on_kill(self) -> None:
        """Stop the run before its next request; the request in flight finishes."""
        if self._run is not None:
            self._run.stop()


__all__ = ["QStashFilterOperator", "jinja_markers", "task_start_ms"]
