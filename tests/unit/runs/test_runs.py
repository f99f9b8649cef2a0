"""
No road reaches a filterless bulk request without the author's all-flag (#17.1).

Every procedure that builds a bulk :class:`~airflow_qstash.protocol.calls.Call` (the wire's builders and the run loops
that drive them), fed generated filters, yields a filterless ``DELETE /v2/messages``, ``DELETE /v2/dlq`` or
``POST /v2/dlq/retry`` only when the filter carried ``cancel_all``/``delete_all``/``retry_all``, and then
marked with ``select_all``; every call passes the send-time guard both hooks run. A source scan proves
those builders are the only places such a Call is made.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
from collections.abc import Generator
from itertools import repeat
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import airflow_qstash
from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import DELETE, RETRY, BulkCancelFilter, DLQFilter
from airflow_qstash.protocol import dlq, endpoints, messages
from airflow_qstash.protocol.calls import (
    NOT_FILTERS,
    UNFILTERED_ACTS_ON_EVERYTHING,
    Call,
    refuse_unfiltered_bulk_call,
)
from airflow_qstash.protocol.dlq import dlq_delete_page, dlq_requests, dlq_retry_page, start_dlq_action
from airflow_qstash.protocol.endpoints import BULK_CANCEL, DLQ_DELETE, DLQ_RETRY
from airflow_qstash.protocol.messages import bulk_cancel_requests, start_bulk_cancel
from airflow_qstash.runs.bulk_cancel import BulkCancelRun, bulk_cancel_total
from airflow_qstash.runs.dlq import make_run
from tests.support import procedures

BASE_URL = "https://qstash.test"
#: Fixed, recent-enough dates (2026-11-01 .. 2026-11-02 UTC): inside every retention, in the past.
FROM_MS = 1_793_491_200_000
TO_MS = FROM_MS + 86_400_000
VALUES = st.lists(st.sampled_from(["a", "b", "billing", "q-1"]), min_size=1, max_size=3, unique=True)


def _answer(call: Call) -> Any:
    if call.endpoint == BULK_CANCEL:
        return {"cancelled": 0}
    if call.endpoint == DLQ_DELETE:
        return {"deleted": 0}
    if call.endpoint == DLQ_RETRY:
        return {"responses": []}
    if call.method == "GET" and call.path == "/v2/dlq":
        return {"messages": []}
    if call.endpoint in (endpoints.DLQ_DELETE_BULK, endpoints.DLQ_RETRY_BULK):
        return {"actionId": "act-1"}
    if call.endpoint == endpoints.GET_BULK_ACTION:
        return {"actionId": "act-1", "state": "FINISHED", "total": 0, "processed": 0}
    if call.endpoint == endpoints.DLQ_DELETE_MULTI:
        return {"deleted": 0}
    if call.endpoint in (endpoints.DLQ_RETRY_MULTI, endpoints.DLQ_RETRY_MESSAGE):
        return {"responses": []}
    if call.endpoint == endpoints.DLQ_MESSAGE:
        return None
    raise AssertionError(f"unexpected call {call.method} {call.path}")


def _guarded_answer(call: Call) -> Any:
    refuse_unfiltered_bulk_call(call, BASE_URL)  # what both hooks' send run first
    return _answer(call)


def calls_of(procedure: Generator[Any, Any, Any]) -> list[Call]:
    """Drive a sans-IO procedure with empty answers; the Calls it yields, each checked by the send guard."""
    _, effects = procedures.drive(procedure, repeat(_guarded_answer))
    return procedures.calls(effects)


def filterless(call: Call) -> bool:
    return not any(name not in NOT_FILTERS and value.strip() for name, value in call.params)


def _bulk_filters() -> st.SearchStrategy[BulkCancelFilter]:
    names = ["labels", "queue_names", "url_groups", "urls", "hosts", "paths", "flow_control_keys", "caller_ips"]
    return st.builds(
        dict,
        chosen=st.dictionaries(st.sampled_from(names), VALUES, max_size=3),
        window=st.sampled_from(
            [{}, {"from_date": FROM_MS}, {"to_date": TO_MS}, {"from_date": FROM_MS, "to_date": TO_MS}]
        ),
        ids=st.one_of(st.none(), st.lists(st.sampled_from(["m1", "m2", "m3"]), min_size=1, unique=True)),
        cancel_all=st.booleans(),
    ).map(_build_bulk)


def _build_bulk(spec: dict[str, Any]) -> BulkCancelFilter | None:
    values = {"message_ids": spec["ids"]} if spec["ids"] else {**spec["chosen"], **spec["window"]}
    try:
        return BulkCancelFilter.build(cancel_all=spec["cancel_all"], **values)
    except QStashInputError:
        return None


def _dlq_filters() -> st.SearchStrategy[DLQFilter | None]:
    names = ["labels", "queue_names", "url_groups", "urls", "flow_control_keys", "caller_ips", "schedule_ids"]
    return st.builds(
        dict,
        chosen=st.dictionaries(st.sampled_from(names), VALUES, max_size=3),
        statuses=st.one_of(st.none(), st.lists(st.sampled_from([400, 404, 500]), min_size=1, unique=True)),
        window=st.sampled_from([{}, {"from_date": FROM_MS}, {"to_date": TO_MS}]),
        ids=st.one_of(st.none(), st.lists(st.sampled_from(["d1", "d2"]), min_size=1, unique=True)),
        select_all=st.booleans(),
    ).map(_build_dlq)


def _build_dlq(spec: dict[str, Any]) -> DLQFilter | None:
    if spec["ids"]:
        values: dict[str, Any] = {"dlq_ids": spec["ids"]}
    else:
        values = {**spec["chosen"], **spec["window"]}
        if spec["statuses"]:
            values["response_statuses"] = spec["statuses"]
    try:
        return DLQFilter.build(select_all=spec["select_all"], **values)
    except QStashInputError:
        return None


def _check(calls: list[Call], allowed: bool, *, exact: bool = True) -> None:
    """
    The invariant: a filterless bulk call only with the author's flag, and the flag never set without it.
    ``exact`` (the builders fed the filter's own query): some bulk call is made, and each carries the flag
    exactly when the author set it. A run loop may act on listed ids instead, or on nothing.
    """
    bulk = [call for call in calls if (call.method, call.endpoint.path) in UNFILTERED_ACTS_ON_EVERYTHING]
    if exact:
        assert bulk, "the procedure sent no bulk call"
    for call in bulk:
        if filterless(call):
            assert allowed and call.select_all, f"filterless {call.method} {call.path} without the all-flag"
        assert allowed or not call.select_all, "select_all is never set without the author's flag"
        if exact:
            assert call.select_all == allowed, "select_all is set exactly where the author's flag was true"


SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.filter_too_much]
)


@SETTINGS
@given(_bulk_filters())
def test_bulk_cancel_builders_and_the_run_loop_mark_filterless_calls_only_under_cancel_all(bulk_filter):
    if bulk_filter is None:
        return
    allowed = bulk_filter.select_all
    _check(calls_of(bulk_cancel_total(bulk_filter, None, BASE_URL)), allowed)
    for params in bulk_cancel_requests(bulk_filter, 500, BASE_URL):
        _check(calls_of(start_bulk_cancel(params)), allowed)
    _check(calls_of(BulkCancelRun(bulk_filter, batch_size=500, max_batches=3).steps(BASE_URL)), allowed, exact=False)


@SETTINGS
@given(_dlq_filters())
def test_dlq_builders_and_the_run_loops_mark_filterless_calls_only_under_delete_all_or_retry_all(dlq_filter):
    if dlq_filter is None:
        return
    allowed = dlq_filter.select_all
    for params in dlq_requests(dlq_filter, DLQ_DELETE, BASE_URL):
        _check(calls_of(dlq_delete_page(params)), allowed)
    for params in dlq_requests(dlq_filter, DLQ_RETRY, BASE_URL):
        _check(calls_of(dlq_retry_page(params)), allowed)
    _check(calls_of(make_run(DELETE, dlq_filter).steps(BASE_URL)), allowed, exact=False)
    _check(calls_of(make_run(RETRY, dlq_filter).steps(BASE_URL)), allowed, exact=False)
    if not dlq_filter.dlq_ids:  # today's API: the bulk action starts carry the flag exactly as the author set it
        for endpoint in (endpoints.DLQ_DELETE_BULK, endpoints.DLQ_RETRY_BULK):
            _check(calls_of(start_dlq_action(endpoint, dlq_requests(dlq_filter, endpoint, BASE_URL)[0])), allowed)


def test_a_parameter_list_that_lost_its_flag_is_refused_not_widened():
    """A caller that rebuilds the query (and so drops the flag) gets a refusal, never a wider request."""
    params = list(bulk_cancel_requests(BulkCancelFilter.build(cancel_all=True), None, BASE_URL)[0])
    with pytest.raises(QStashInputError):
        calls_of(start_bulk_cancel(params))


def _bulk_call_sites(tree: ast.AST) -> list[ast.Call]:
    """``Call(BULK_CANCEL | DLQ_DELETE | DLQ_RETRY | Endpoint(...), ...)`` constructions in a module."""
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Call" and node.args:
            first = node.args[0]
            bulk_names = ("BULK_CANCEL", "DLQ_DELETE", "DLQ_RETRY", "endpoint")
            if getattr(first, "id", None) in bulk_names or isinstance(first, ast.Call):
                sites.append(node)
    return sites


def test_the_bulk_calls_are_built_only_by_the_checked_builders():
    """No other module builds a bulk Call, and in the protocol only the builders above do (each passes select_all)."""
    package = pathlib.Path(airflow_qstash.__file__).parent
    outside = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "emulator" not in path.parts
        and "protocol" not in path.parts
        and _bulk_call_sites(ast.parse(path.read_text()))
    }
    assert outside == set()
    builders = {
        name: function
        for module in (messages, dlq)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and _bulk_call_sites(ast.parse(inspect.getsource(function)))
    }
    assert set(builders) == {"start_bulk_cancel", "dlq_delete_page", "dlq_retry_page", "start_dlq_action"}
    for name, function in builders.items():
        for site in _bulk_call_sites(ast.parse(inspect.getsource(function))):
            assert any(keyword.arg == "select_all" for keyword in site.keywords), name
