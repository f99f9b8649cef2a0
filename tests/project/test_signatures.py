"""The filters are declared once (``BULK_CANCEL_FILTERS``); the explicit keywords that repeat them stay in step.

The operator and the hook spell every filter out as a keyword, because Airflow users read signatures and
docstrings. These tests are what keeps those keywords, and the operator's documented template fields, equal
to the table.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from airflow_qstash.filters import BULK_CANCEL_FILTERS
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator

#: Keywords of the operator that are not filters.
OPERATOR_SETTINGS = {
    "qstash_conn_id",
    "optional_filters",
    "batch_size",
    "max_batches",
    "cancel_all",
    "action_timeout",
    "deferrable",
    "durable",
}
#: Keywords of ``QStashHook.bulk_cancel`` that are not filters.
HOOK_SETTINGS = {"count", "cancel_all", "now_ms"}
#: Keywords of the hooks' whole-job ``cancel_messages`` that are not filters.
HOOK_JOB_SETTINGS = {"bulk_filter", "cancel_all", "batch_size", "max_batches", "action_timeout", "now_ms"}


def keywords(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The named parameters of ``function`` (no ``self``, no ``*args``/``**kwargs``)."""
    return {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }


def documented_params(docstring: str) -> dict[str, str]:
    """Each ``:param name:`` of a reST docstring and its text (continuation lines included)."""
    blocks = re.split(r"^\s*:(?=param |return|rtype|raises)", docstring, flags=re.MULTILINE)
    params = {}
    for block in blocks:
        match = re.match(r"param (\w+):(.*)", block, flags=re.DOTALL)
        if match:
            params[match.group(1)] = " ".join(match.group(2).split())
    return params


def test_the_table_is_not_empty_and_is_what_filters_exports():
    assert len(BULK_CANCEL_FILTERS.names) == 12


@pytest.mark.parametrize(
    ("function", "settings"),
    [
        pytest.param(QStashBulkCancelOperator.__init__, OPERATOR_SETTINGS, id="operator"),
        pytest.param(QStashHook.bulk_cancel, HOOK_SETTINGS, id="hook"),
        pytest.param(QStashAsyncHook.bulk_cancel, HOOK_SETTINGS, id="async-hook"),
        pytest.param(QStashHook.cancel_messages, HOOK_JOB_SETTINGS, id="hook-job"),
        pytest.param(QStashAsyncHook.cancel_messages, HOOK_JOB_SETTINGS, id="async-hook-job"),
    ],
)
def test_the_filter_keywords_are_exactly_the_declared_filters(function: Callable[..., Any], settings: set[str]):
    params = keywords(function)
    assert settings <= set(params), f"settings missing from the signature: {settings - set(params)}"
    filters = [name for name in params if name not in settings]
    names = set(BULK_CANCEL_FILTERS.names)
    assert sorted(filters) == sorted(names), (
        f"missing: {sorted(names - set(filters))}; not declared: {sorted(set(filters) - names)}"
    )
    for name in filters:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, f"{name} must be keyword-only"
        assert params[name].default is None, f"{name} must default to None (no such filter)"


def test_the_operator_documents_every_filter_as_templated():
    params = documented_params(QStashBulkCancelOperator.__doc__ or "")
    for name in BULK_CANCEL_FILTERS.names:
        assert name in params, f":param {name}: is missing from the operator's docstring"
        assert params[name].endswith("(templated)"), f":param {name}: is not marked (templated)"


def test_the_operator_documents_every_keyword():
    params = documented_params(QStashBulkCancelOperator.__doc__ or "")
    assert set(keywords(QStashBulkCancelOperator.__init__)) == set(params)


def test_the_template_fields_are_the_filters_then_the_loop_settings():
    assert tuple(QStashBulkCancelOperator.template_fields) == (
        *BULK_CANCEL_FILTERS.names,
        "batch_size",
        "max_batches",
        "cancel_all",
        "action_timeout",
    )
    assert QStashBulkCancelOperator.template_fields_renderers == BULK_CANCEL_FILTERS.renderers
    documented = documented_params(QStashBulkCancelOperator.__doc__ or "")
    for name in QStashBulkCancelOperator.template_fields:
        assert documented[name].endswith("(templated)"), name


def test_the_docstring_reader_sees_a_missing_marker():
    """The docstring check bites: a parameter without '(templated)' is reported."""
    doc = """
    :param labels: labels to match. (templated)
    :param urls: destination URLs
        to match.
    :return: a dict.
    """
    params = documented_params(doc)
    assert params == {"labels": "labels to match. (templated)", "urls": "destination URLs to match."}
    assert not params["urls"].endswith("(templated)")
