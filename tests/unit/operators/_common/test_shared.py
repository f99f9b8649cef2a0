"""What the bulk-cancel and the DLQ operators share (``airflow_qstash.operators._common``): one refusal
type, one reading of ``optional_filters``, the task's start, the trigger's event."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.operators._common import QStashFilterOperator, jinja_markers, task_start_ms
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator

OPERATORS: dict[Any, str] = {
    QStashBulkCancelOperator: "filter",
    QStashDLQDeleteOperator: "field",
    QStashDLQRetryOperator: "field",
}


@pytest.mark.parametrize("cls", OPERATORS)
def test_every_operator_fails_a_refusal_without_retries_through_the_one_base(cls: type):
    """A refusal is an AirflowFailException (no retries) caused by the QStashInputError that says why;
    the operators declare no refusal type of their own (no double inheritance)."""
    assert issubclass(cls, QStashFilterOperator)
    assert "REFUSED" not in vars(cls) and not hasattr(QStashFilterOperator, "REFUSED")
    with pytest.raises(AirflowFailException, match="optional_filters must be a list") as info:
        cls(task_id="t", labels="a", optional_filters="labels")
    assert type(info.value) is AirflowFailException
    assert isinstance(info.value.__cause__, QStashInputError)
    assert isinstance(info.value.__cause__, ValueError)  # a ValueError for Python callers of the readers
    op = cls(task_id="t", labels="a", to_date=0)
    with pytest.raises(AirflowFailException) as planned, op._refusing():
        op.plan(1_800_000_000_000)
    assert isinstance(planned.value.__cause__, QStashInputError)


@pytest.mark.parametrize("cls", OPERATORS)
@pytest.mark.parametrize(
    ("optional_filters", "message"),
    [
        ("labels", "optional_filters must be a list of {noun} names (e.g. ['labels', 'queue_names']), not 'labels'."),
        ({"labels": True}, "optional_filters must be a list of {noun} names"),
        (["labels", "label"], "optional_filters names unknown {noun}(s) ['label']; known {noun}s: "),
    ],
)
def test_optional_filters_are_refused_alike_when_the_dag_is_parsed(cls: type, optional_filters: Any, message: str):
    noun = OPERATORS[cls]
    with pytest.raises(AirflowFailException) as info:
        cls(task_id="t", labels="a", optional_filters=optional_filters)
    assert str(info.value).startswith(message.format(noun=noun))


def test_the_task_start_is_the_task_instances_or_now():
    start = pendulum.datetime(2026, 11, 2, 3, 0, 0, 250000, tz="UTC")
    in_a_task: Any = {"ti": SimpleNamespace(start_date=start)}
    outside_a_task: Any = {}
    assert task_start_ms(in_a_task) == 1_793_588_400_250
    before = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    now = task_start_ms(outside_a_task)
    assert before <= now <= int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)


def test_the_jinja_markers_are_the_dags_own_or_jinjas():
    assert jinja_markers(None) == ("{{", "{%", "{#")
    dag = SimpleNamespace(jinja_environment_kwargs={"variable_start_string": "[[", "comment_start_string": "<#"})
    assert jinja_markers(dag) == ("[[", "{%", "<#")


@pytest.mark.parametrize(
    ("cls", "what"),
    [
        (QStashBulkCancelOperator, "bulk cancel"),
        (QStashDLQDeleteOperator, "DLQ delete"),
        (QStashDLQRetryOperator, "DLQ retry"),
    ],
)
def test_an_event_without_a_message_fails_naming_the_run(cls: type, what: str):
    op = cls(task_id="t", labels="a")
    context: Any = {}
    with pytest.raises(AirflowException, match=f"^QStash {what} trigger failed: {{'status': 'error'}}$"):
        op.execute_complete(context, {"status": "error"})
