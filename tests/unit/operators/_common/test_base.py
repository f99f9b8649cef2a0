"""
``airflow_qstash.operators._common``: one base, one dialect. Both operators name the judgement of the raw
values the same (``set_by_author``, ``templated``), the base makes it (no subclass calls a judge in its
``__init__``), and it is made on the raw values even when rendering comes first.
"""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

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
