"""
``airflow_qstash.hooks.qstash``: the two hooks are one API on two transports (the same public methods with
the same parameters), the whole-job bulk cancel returns the operator's summary on both, and the hooks read
the clock (``now_ms``) where no task start pins it.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.runs.bulk_cancel import BulkCancelRun
from tests.doubles.fake_qstash import Answer, FakeQStash, HookClient
from tests.doubles.harness import pinned_clock

#: What only one transport has, and why: Airflow's connection form and Test button call the sync hook's
#: class methods; each transport closes its own client; the sync hook's ``config`` is a property, the
#: async hook reads it with ``await get_config()``; ``sleep`` is the sync hook's replaceable pause.
TRANSPORT_ONLY = {
    QStashHook: {"close", "sleep", "test_connection", "get_connection_form_widgets", "get_ui_field_behaviour"},
    QStashAsyncHook: {"aclose", "get_config"},
}

DAY_MS = 86_400_000
#: The task's start the filters below were valid at: 2026-11-02T00:00:00Z.
START_MS = 1_793_577_600_000
TWO_YEARS_LATER_MS = START_MS + 2 * 365 * DAY_MS


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: value
        for klass in cls.__mro__
        if klass.__module__ == "airflow_qstash.hooks.qstash"
        for name, value in vars(klass).items()
        if not name.startswith("_") and callable(value)
    }


def test_both_hooks_have_the_same_public_methods():
    sync, asynchronous = _public_methods(QStashHook), _public_methods(QStashAsyncHook)
    assert set(sync) - TRANSPORT_ONLY[QStashHook] == set(asynchronous) - TRANSPORT_ONLY[QStashAsyncHook]
    for name in ("bulk_cancel", "cancel_messages", "dlq_delete", "dlq_retry", "list_dlq", "cancel_message"):
        assert name in sync and name in asynchronous


def test_the_shared_methods_take_the_same_parameters_and_the_async_ones_are_coroutines():
    sync, asynchronous = _public_methods(QStashHook), _public_methods(QStashAsyncHook)
    shared = (set(sync) - TRANSPORT_ONLY[QStashHook]) & set(asynchronous)
    assert shared
    for name in sorted(shared):
        sync_params = inspect.signature(sync[name]).parameters
        async_params = inspect.signature(asynchronous[name]).parameters
        assert [(p.name, p.kind, p.default) for p in sync_params.values()] == [
            (p.name, p.kind, p.default) for p in async_params.values()
        ], name
        assert inspect.iscoroutinefunction(asynchronous[name]), name
        assert not inspect.iscoroutinefunction(sync[name]), name


def test_the_hook_module_re_exports_no_helper_under_a_second_name():
    import airflow_qstash.hooks.qstash as module

    assert module.__all__ == ["QStashAsyncHook", "QStashHook"]


def test_cancel_messages_runs_the_whole_job_and_returns_the_operators_summary(
    client: HookClient, fake_qstash: FakeQStash
):
    fake_qstash.route("DELETE", "/v2/messages", Answer(200, {"cancelled": 3}), Answer(200, {"cancelled": 0}))
    summary = client.run("cancel_messages", labels="a", batch_size=3, now_ms=START_MS)
    expected_keys = set(BulkCancelRun(BulkCancelFilter.build(labels="a"), batch_size=3).summary())
    assert set(summary) == expected_keys
    assert (summary["cancelled"], summary["batches"], summary["rounds"], summary["mode"]) == (3, 2, 2, "batched")
    assert summary["filters"] == "labels=['a']"
    assert [sent.query for sent in fake_qstash.sent] == ["label=a&count=3&async=true"] * 2


def test_bulk_cancel_is_one_request_on_both_transports(client: HookClient, fake_qstash: FakeQStash):
    fake_qstash.route("DELETE", "/v2/messages", Answer(200, {"cancelled": 3}))
    answer = client.run("bulk_cancel", labels="a", count=3, now_ms=START_MS)
    assert answer.cancelled == 3
    assert len(fake_qstash.sent) == 1


# --------------------------------------------------------------------------- the clock


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("bulk_cancel", {}),
        ("cancel_messages", {}),
        ("dlq_delete", {}),
        ("dlq_retry", {}),
    ],
)
def test_a_fixed_window_is_judged_at_the_given_now_not_the_wall_clock(
    client: HookClient, fake_qstash: FakeQStash, method: str, kwargs: dict[str, Any]
):
    """A fixed from_date 30 days before the task's start is a filter at that start, also when the clock
    reads two years later; without now_ms the hook reads the clock, and then it is no filter: refused
    before any request (never a wider request)."""
    from_date = START_MS - 30 * DAY_MS
    fake_qstash.route("DELETE", "/v2/messages", Answer(200, {"cancelled": 0}))
    fake_qstash.route("GET", "/v2/dlq", Answer(200, {"messages": []}))
    with pinned_clock(TWO_YEARS_LATER_MS):
        with pytest.raises(QStashInputError, match="No filter given"):
            client.run(method, from_date=from_date, **kwargs)
        assert fake_qstash.sent == []
        client.run(method, from_date=from_date, now_ms=START_MS, **kwargs)
    assert fake_qstash.sent
    assert all(f"{from_date}" in sent.query or sent.path == "/v2/dlq" for sent in fake_qstash.sent)


def test_a_filter_object_and_filter_keywords_are_not_both_taken(client: HookClient, fake_qstash: FakeQStash):
    bulk_filter = BulkCancelFilter.build(labels="a", now_ms=START_MS)
    with pytest.raises(QStashInputError, match="not both"):
        client.run("cancel_messages", bulk_filter, labels="b")
    assert fake_qstash.sent == []
