"""
Durable runs: what a QStash filter operator keeps in Airflow's task state store (Airflow 3.3+,
``context["task_state_store"]``) so that a retry of the same task in the same DAG run re-attaches to the
bulk action its earlier try started, by id, and keeps that try's window.

One key (:data:`STATE_KEY`) holds one JSON value, written whole each time so its parts always agree:

* ``task_start_ms``: the first try's start, where ``to_date`` was pinned; a retry plans with it, so its
  window is the first try's (no re-pin to the retry's own start);
* ``plan``: the planned filter (its ``to_dict``) and the action, to check a retry plans the same run (a
  DAG file changed between tries starts afresh, and says so);
* ``action_ids``: every bulk action the run started or joined, stored before its first poll.

The key is deleted when the run succeeds. On an Airflow without a task state store (before 3.3, or a
context without one) ``durable`` is a no-op that logs one line, and a retry finds its running action by
its filter, as before.

Imported when a DAG file is parsed: nothing here imports an HTTP client, a hook or a trigger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: The task state store key of a run (one per task instance; retries share it).
STATE_KEY = "qstash_run"
#: The layout of the stored value; a value of another layout is ignored (and logged), never guessed at.
STATE_VERSION = 1
#: The most action ids kept (a run's rounds are bounded; this bounds the stored value, about 60 bytes an id).
MAX_STORED_ACTION_IDS = 1_000


def _json_form(value: Any) -> Any:
    """``value`` as the task state store gives it back (tuples become lists)."""
    return json.loads(json.dumps(value))


@dataclass
class RunRecord:
    """What one durable run keeps: its first try's start, its plan and the bulk actions it followed."""

    task_start_ms: int
    plan: dict[str, Any]
    action_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "task_start_ms": self.task_start_ms,
            "plan": _json_form(self.plan),
            "action_ids": list(self.action_ids[-MAX_STORED_ACTION_IDS:]),
        }

    @classmethod
    def from_json(cls, value: Any) -> RunRecord | None:
        """The record in a stored value, or ``None`` when the value is not one this version wrote."""
        if not isinstance(value, dict) or value.get("version") != STATE_VERSION:
            return None
        start, plan, ids = value.get("task_start_ms"), value.get("plan"), value.get("action_ids")
        if isinstance(start, bool) or not isinstance(start, int) or start <= 0 or not isinstance(plan, dict):
            return None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
            return None
        return cls(task_start_ms=start, plan=plan, action_ids=list(ids))

    def same_plan(self, plan: dict[str, Any]) -> bool:
        """Whether ``plan`` is the run this record was written for."""
        return self.plan == _json_form(plan)


def read_durable(value: Any) -> bool:
    """``durable`` as given: ``True`` or ``False`` (it is not templated); anything else is refused."""
    from airflow_qstash.exceptions import QStashInputError

    if not isinstance(value, bool):
        raise QStashInputError(f"durable must be True or False, not {value!r}.")
    return value


class RunMemory:
    """
    The operator's handle on its :class:`RunRecord` in the task state store; every method is a no-op when
    the run is not durable (``durable=False``, or no task state store in the context).

    :param store: ``context["task_state_store"]``, or ``None``.
    :param log: the operator's logger.
    """

    def __init__(self, store: Any, log: Any) -> None:
        self.store = store
        self.log = log
        self.record: RunRecord | None = None

    @classmethod
    def open(cls, context: Any, *, durable: bool, log: Any) -> RunMemory:
        """
        The memory of this task instance's run. With ``durable`` on and no task state store in the
        context, log the one line that says ``durable`` has no effect here.
        """
        store = context.get("task_state_store") if durable and hasattr(context, "get") else None
        if durable and store is None:
            log.info(
                "durable=True has no effect here: this Airflow (%s) has no task state store (Airflow 3.3+), so a "
                "retry finds a running bulk action (or what is left) by its filter, and pins to_date to its own "
                "start.",
                _airflow_version(),
            )
        return cls(store, log)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def recall(self) -> RunRecord | None:
        """The record an earlier try of this task instance left, or ``None``."""
        if self.store is None:
            return None
        value = self.store.get(STATE_KEY)
        if value is None:
            return None
        record = RunRecord.from_json(value)
        if record is None:
            self.log.warning(
                "The task state store holds a %r value this provider version cannot read; it is ignored and "
                "replaced (a retry then joins a running action by its filter).",
                STATE_KEY,
            )
        return record

    def remember(self, record: RunRecord) -> None:
        """Write ``record`` (the whole value, so its parts agree)."""
        self.record = record
        if self.store is not None:
            self.store.set(STATE_KEY, record.to_json())

    def add_actions(self, action_ids: Any) -> None:
        """Store action ids not stored yet (before the first poll of each); called by the run."""
        if self.record is None or self.store is None:
            return
        new = [i for i in ([action_ids] if isinstance(action_ids, str) else list(action_ids or ())) if i]
        new = [i for i in new if isinstance(i, str) and i not in self.record.action_ids]
        if new:
            self.record.action_ids.extend(new)
            self.remember(self.record)

    def forget(self) -> None:
        """The run succeeded: delete its record."""
        self.record = None
        if self.store is not None:
            self.store.delete(STATE_KEY)


def _airflow_version() -> str:
    try:
        from airflow import __version__
    except ImportError:  # pragma: no cover - Airflow is always installed with the provider
        return "unknown version"
    return str(__version__)


__all__ = ["MAX_STORED_ACTION_IDS", "STATE_KEY", "RunMemory", "RunRecord", "read_durable"]
