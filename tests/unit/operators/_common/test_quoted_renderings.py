"""
#17.9: ``{{ x | tojson }}`` of a string renders ``"a"`` (with its quotes); it was sent as the label ``"a"``
and the task succeeded having cancelled 0. A quoted rendering is now read as the value inside, like a JSON
array rendering, on the sync and the deferrable path of both operators.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_qstash.operators.dlq import QStashDLQRetryOperator
from tests.support.bulk_cancel_task import make_op, native_op, rendered, sent_query, ti_context

QUOTED = [
    pytest.param("{{ params.one | tojson }}", {"one": "billing"}, ["billing"], id="tojson-string"),
    pytest.param("{{ params.one | tojson }}", {"one": "été"}, ["été"], id="tojson-non-ascii"),
    pytest.param("'{{ params.one }}'", {"one": "billing"}, ["billing"], id="single-quoted"),
    pytest.param("{{ params.a | tojson }}, {{ params.b | tojson }}", {"a": "x", "b": "y"}, ["x", "y"], id="two"),
]


@pytest.mark.parametrize(("template", "params", "expected"), QUOTED)
def test_a_quoted_rendering_is_sent_as_the_value_inside(qstash, requests_mock, template, params, expected):
    qstash(0)
    op = rendered(make_op(labels=template), params=params)
    op.execute(ti_context())
    assert sorted(v for k, v in sent_query(requests_mock) if k == "label") == expected


@pytest.mark.parametrize(("template", "params", "expected"), QUOTED)
def test_a_quoted_rendering_reaches_the_trigger_as_the_value_inside(qstash, requests_mock, template, params, expected):
    op = rendered(make_op(labels=template, deferrable=True), params=params)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ti_context())
    assert requests_mock.call_count == 0
    assert sorted(deferred.value.trigger.serialize()[1]["bulk_filter"]["labels"]) == expected


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_quoted_rendering_that_is_not_a_string_is_refused(qstash, requests_mock, deferrable):
    op = rendered(make_op(labels='{{ params.one | tojson }} and "more', deferrable=deferrable), params={"one": "a"})
    with pytest.raises(AirflowFailException, match="starts with a quote"):
        op.execute(ti_context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_dlq_operators_read_a_quoted_rendering_the_same_way(qstash, requests_mock, deferrable):
    op = QStashDLQRetryOperator(task_id="r", labels="{{ params.one | tojson }}", deferrable=deferrable)
    op.render_template_fields(ti_context(params={"one": "billing"}))
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ti_context())
        assert deferred.value.trigger.serialize()[1]["dlq_filter"]["labels"] == ["billing"]
    else:
        # the run the worker drives (its loop is the DLQ run's business): the filter it acts on
        assert op.plan(1_717_243_200_123).dlq_filter.labels == ("billing",)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("build", "labels"),
    [
        pytest.param(make_op, "none", id="literal"),
        pytest.param(native_op, "{{ [params.one] }}", id="native-list"),
        pytest.param(make_op, "{{ params.one | tojson }}", id="tojson"),
    ],
)
def test_the_real_label_none_can_be_passed(qstash, requests_mock, build: Any, labels: str):
    """The documented ways to send the label ``none`` (a templated "none" rendering counts as empty)."""
    qstash(0)
    op = build(labels=labels)
    op.render_template_fields(ti_context(params={"one": "none"}))
    op.execute(ti_context())
    assert [v for k, v in sent_query(requests_mock) if k == "label"] == ["none"]
