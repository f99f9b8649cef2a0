"""
``airflow_qstash.operators._common``: one base, one dialect. Both operators name the judgement of the raw
values the same (``set_by_author``, ``templated``), the base makes it (no subclass calls a judge in its
``__init__``), and it is made on the raw values even when rendering comes first.
"""

from __future__ import annotations

import inspect
from typing import Any

import jinja2
import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.operators._common import QStashFilterOperator
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator

OPERATORS = [QStashBulkCancelOperator, QStashDLQDeleteOperator, QStashDLQRetryOperator]


@pytest.mark.parametrize("cls", OPERATORS)
def test_every_operator_speaks_the_bases_dialect(cls: type):
    assert issubclass(cls, QStashFilterOperator)
    for old in ("filters_set_by_author", "templated_filters", "templated_fields", "_judge_raw_values"):
        assert not hasattr(cls, old), old
    op = cls(task_id="t", labels="{{ params.labels }}", urls="https://a.example/x")
    assert op.set_by_author == ("urls", "labels")  # in table order
    assert op.templated == ("labels",)


@pytest.mark.parametrize("cls", OPERATORS)
def test_the_judgement_is_made_on_the_raw_values_even_when_rendering_comes_first(cls: type):
    op = cls(task_id="t", labels="{{ params.labels }}", urls="https://a.example/x")
    context: Any = {"params": {"labels": "rendered"}}
    op.render_template_fields(context, jinja_env=jinja2.Environment())
    assert op.labels == "rendered"
    assert op.templated == ("labels",)  # judged before rendering, not on the rendered text


@pytest.mark.parametrize("cls", OPERATORS)
def test_the_base_owns_the_steps_and_an_operator_declares_its_table_and_run(cls: type):
    """read, refuse, plan, run or defer, complete: one ``execute`` and one ``execute_complete`` (the base's)
    for every operator; a subclass declares its filter table (whose ``all_flag`` is its all-flag argument
    and a template field), its value object and its run."""
    for step in ("execute", "execute_complete", "plan", "_plan_durably", "_run_or_defer", "_finish"):
        assert getattr(cls, step) is getattr(QStashFilterOperator, step), step
    table = cls.FILTERS
    assert set(table.names) <= set(cls.template_fields)
    assert table.all_flag in cls.template_fields
    assert table.all_flag in inspect.signature(cls.__init__).parameters
    assert cls.FILTER_CLASS.TABLE.specs == table.specs
    op = cls(task_id="t", labels="a", **{table.all_flag: True})
    assert getattr(op, table.all_flag) is True
    assert op.plan(1_800_000_000_000)


@pytest.mark.parametrize(
    ("cls", "all_flag"),
    [
        (QStashBulkCancelOperator, "cancel_all"),
        (QStashDLQDeleteOperator, "delete_all"),
        (QStashDLQRetryOperator, "retry_all"),
    ],
)
def test_each_operators_refusals_name_its_own_all_flag_from_its_table(cls: type, all_flag: str):
    assert cls.FILTERS.all_flag == all_flag
    with pytest.raises(QStashInputError, match=rf"set {all_flag}=True if that is really meant") as info:
        cls(task_id="t", to_date="2099-01-01").plan(1_800_000_000_000)
    assert "select_all" not in str(info.value)
    with pytest.raises(QStashInputError, match=rf"^{all_flag} must be True or False, not 'maybe'"):
        cls(task_id="t", labels="a", **{all_flag: "maybe"}).plan(1_800_000_000_000)
