"""
``airflow_qstash.hooks.qstash``: the two hooks are one API on two transports (the same public methods with
the same parameters), the whole-job bulk cancel returns the operator's summary on both, and the hooks read
the clock (``now_ms``) where no task start pins it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashError, QStashInputError
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
#: What each transport writes itself, with the same name and parameters: sending one call and driving a
#: procedure. Every other shared method is an API method, written once.
TRANSPORT_PRIMITIVES = {"send", "drive"}

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


# --------------------------------------------------------------------------- one method, both transports


def _api_methods() -> list[str]:
    """The public methods both hooks have, but their transport primitives."""
    sync, asynchronous = _public_methods(QStashHook), _public_methods(QStashAsyncHook)
    return sorted((set(sync) - TRANSPORT_ONLY[QStashHook] - TRANSPORT_PRIMITIVES) & set(asynchronous))


@pytest.mark.parametrize("name", _api_methods())
def test_each_shared_method_is_written_once_and_each_hook_drives_it(name: str):
    """Both hooks' methods wrap the one plan on the shared base: a method written twice (a twin body on one
    transport) fails here, as does one on the base that is not a plan for both transports."""
    sync, asynchronous = inspect.getattr_static(QStashHook, name), inspect.getattr_static(QStashAsyncHook, name)
    assert sync is not asynchronous
    assert sync.__wrapped__ is asynchronous.__wrapped__, f"{name} has a body per transport"
    base = QStashHook.__mro__[1]
    assert sync.__wrapped__ is vars(base)[name].plan
    assert (sync.__qualname__, asynchronous.__qualname__) == (f"QStashHook.{name}", f"QStashAsyncHook.{name}")
    assert sync.__doc__ == asynchronous.__doc__ and sync.__doc__
    assert "_Plan" not in str(inspect.signature(sync)), "the signature shows what the method returns"


class ScriptedQStash:
    """
    A scripted driver's other end: answers each :class:`~airflow_qstash.protocol.calls.Call` by its method and path
    template, and logs every effect in order (the calls, and the pauses as ``("sleep", seconds)``).
    """

    def __init__(self, refuse: bool = False) -> None:
        self.log: list[Any] = []
        self.refuse = refuse
        self.bulk_cancels = 0
        self.dlq_actions = 0
        self.polls = 0

    @staticmethod
    def action(action_id: str, total: int) -> dict[str, Any]:
        return {"actionId": action_id, "state": "FINISHED", "total": total, "processed": total}

    def answer(self, call: Any) -> Any:
        self.log.append(call)
        if self.refuse:
            raise QStashInputError("refused before sending (scripted)")
        params = dict(call.params)
        route = (call.method, call.endpoint.path)
        if route == ("DELETE", "/v2/messages"):
            self.bulk_cancels += 1
            return {"cancelled": 3 if self.bulk_cancels == 1 else 0}
        if route == ("GET", "/v2/bulkActions/{id}"):
            self.polls += 1
            if call.path_id == "dlq_1" and self.polls == 1:  # still running at the first poll: a pause
                return {**self.action(call.path_id, 2), "state": "IN_PROGRESS", "processed": 1}
            return self.action(call.path_id, 2 if call.path_id == "dlq_1" else 0)
        if route == ("GET", "/v2/bulkActions"):
            if "cursor" in params:
                return {"bulkActions": [self.action("act_2", 5)]}
            return {"bulkActions": [self.action("act_1", 4)], "cursor": "page_2"}
        if route == ("DELETE", "/v2/dlq/multi"):
            raise QStashAPIError("DELETE /v2/dlq/multi: 404 Not Found", http_status=404, api_error="not found")
        if route == ("DELETE", "/v2/dlq"):
            return {"deleted": len([name for name, _ in call.params if name == "dlqIds"])}
        if route == ("POST", "/v2/dlq/retry/bulk"):
            self.dlq_actions += 1
            return {"actionId": f"dlq_{self.dlq_actions}"}
        if route == ("GET", "/v2/dlq"):
            return {"messages": [{"dlqId": "d1", "messageId": "m1"}], "cursor": "next"}
        if route in (("DELETE", "/v2/messages/{id}"), ("DELETE", "/v2/dlq/{id}")):
            return None
        raise AssertionError(f"unscripted call {route}")


class ScriptedHook(QStashHook):
    """The requests hook with its sending and pausing replaced by a :class:`ScriptedQStash`."""

    script: ScriptedQStash

    def send(self, call: Any, *, policy: Any = None) -> Any:
        return self.script.answer(call)

    def sleep(self, seconds: float) -> None:  # type: ignore[override]
        self.script.log.append(("sleep", seconds))


class ScriptedAsyncHook(QStashAsyncHook):
    """The httpx hook with its sending replaced by a :class:`ScriptedQStash` (its pauses: :class:`PausesTo`)."""

    script: ScriptedQStash

    async def send(self, call: Any, *, policy: Any = None) -> Any:
        return self.script.answer(call)


class PausesTo:
    """``asyncio`` as the hooks module sees it, with each pause logged to ``log`` instead of taken."""

    def __init__(self, log: list[Any]) -> None:
        self._log = log

    async def sleep(self, seconds: float) -> None:
        self._log.append(("sleep", seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


#: Arguments for every shared method: a new method needs a row here (see the test's first assertion).
SCRIPTED_CASES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "bulk_cancel_by_filter": ((BulkCancelFilter.build(labels="a", now_ms=START_MS),), {"count": 3}),
    "bulk_cancel": ((), {"labels": "a", "queue_names": ["q1", "q2"], "count": 3, "now_ms": START_MS}),
    "cancel_messages": ((), {"labels": "a", "batch_size": 3, "max_batches": 5, "now_ms": START_MS}),
    "get_bulk_action": (("act_1",), {}),
    "list_bulk_actions": ((), {"state": "FINISHED"}),
    "cancel_message": (("msg_1",), {}),
    "dlq_delete": ((), {"dlq_ids": ["d1", "d2"], "max_requests": 10}),
    "dlq_retry": ((), {"labels": "a", "from_date": START_MS - DAY_MS, "now_ms": START_MS, "action_timeout": 60}),
    "list_dlq": ((), {"labels": "a", "count": 10, "cursor": "c0"}),
    "delete_dlq_message": (("d1",), {}),
}


def _run_scripted(name: str, script: ScriptedQStash, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The method ``name`` on both hooks, each against a fresh copy of ``script``: (sync, async) outcomes."""
    import copy

    import airflow_qstash.hooks.qstash as module

    args, kwargs = SCRIPTED_CASES[name]
    outcomes = []
    for hook_class in (ScriptedHook, ScriptedAsyncHook):
        hook = hook_class()
        hook.script = copy.deepcopy(script)
        try:
            result = getattr(hook, name)(*args, **kwargs)
            if inspect.iscoroutine(result):
                with monkeypatch.context() as patches:
                    patches.setattr(module, "asyncio", PausesTo(hook.script.log))
                    result = asyncio.run(result)
        except QStashError as err:
            result = err
        outcomes.append((result, hook.script.log))
    return outcomes[0], outcomes[1]


def _comparable(result: Any) -> Any:
    if isinstance(result, dict):
        return {key: value for key, value in result.items() if key != "duration_seconds"}  # the monotonic clock
    if isinstance(result, BaseException):
        return (type(result), str(result))
    return result


def test_the_scripted_cases_cover_every_shared_method():
    assert set(SCRIPTED_CASES) == set(_api_methods())


@pytest.mark.parametrize("name", sorted(SCRIPTED_CASES))
def test_both_hooks_send_the_same_calls_and_return_the_same_result(
    name: str, qstash_conn: str, monkeypatch: pytest.MonkeyPatch
):
    """One method, written once, drives the same procedure on both transports: against the same scripted
    answers both hooks send the same calls in the same order and return the same result (a 404 thrown back
    into the DLQ run, which then takes the paging API, included)."""
    (sync_result, sync_log), (async_result, async_log) = _run_scripted(name, ScriptedQStash(), monkeypatch)
    assert sync_log, f"{name} sent nothing"
    assert sync_log == async_log
    assert not isinstance(sync_result, BaseException), sync_result
    assert _comparable(sync_result) == _comparable(async_result)


def test_an_input_refusal_while_driving_ends_the_call_on_both_hooks(qstash_conn: str, monkeypatch: pytest.MonkeyPatch):
    """A refusal raised when a call is sent (a connection mistake, say) is not a failed round the run goes
    on from: on both transports it ends the job after that one call."""
    (sync_result, sync_log), (async_result, async_log) = _run_scripted(
        "cancel_messages", ScriptedQStash(refuse=True), monkeypatch
    )
    assert isinstance(sync_result, QStashInputError) and _comparable(sync_result) == _comparable(async_result)
    assert len(sync_log) == 1 and sync_log == async_log


def test_a_plan_added_to_the_base_is_a_method_of_both_hooks(qstash_conn: str, monkeypatch: pytest.MonkeyPatch):
    """The way a new endpoint method is added: one plan on the shared base, and both hooks have it, with
    the plan's parameters, refusing bad input before the connection is read."""
    from airflow_qstash.hooks.qstash import _OnBothTransports, _Plan

    def ping(self: Any, message_id: str, *, times: int = 1) -> _Plan[list[Any]]:
        """Cancel one message ``times`` times."""
        if times < 1:
            raise QStashInputError("times must be 1 or more")
        single = self.cancel_message.__wrapped__  # another plan, reused

        def procedure(config: Any) -> Any:
            answers = []
            for _ in range(times):
                answers.append((yield from single(self, message_id)(config)))
            return answers

        return procedure

    monkeypatch.setattr(QStashHook.__mro__[1], "ping", _OnBothTransports(ping), raising=False)

    class NewSync(ScriptedHook):
        pass

    class NewAsync(ScriptedAsyncHook):
        pass

    assert [name for name in ("ping",) if name in vars(NewSync) and name in vars(NewAsync)] == ["ping"]
    assert inspect.iscoroutinefunction(NewAsync.ping) and not inspect.iscoroutinefunction(NewSync.ping)
    assert (
        str(inspect.signature(NewSync.ping)) == "(self: 'Any', message_id: 'str', *, times: 'int' = 1) -> 'list[Any]'"
    )
    sync_hook, async_hook = NewSync(), NewAsync()
    sync_hook.script, async_hook.script = ScriptedQStash(), ScriptedQStash()
    assert sync_hook.ping("m1", times=2) == asyncio.run(async_hook.ping("m1", times=2)) == [None, None]
    assert [call.path for call in sync_hook.script.log] == ["/v2/messages/m1"] * 2
    assert sync_hook.script.log == async_hook.script.log
    with pytest.raises(QStashInputError, match="times"):
        NewSync("no_such_connection").ping("m1", times=0)
    with pytest.raises(QStashInputError, match="times"):
        asyncio.run(NewAsync("no_such_connection").ping("m1", times=0))


def test_a_plan_must_say_what_the_method_returns():
    from airflow_qstash.hooks.qstash import _OnBothTransports

    def untyped(self: Any) -> Any:
        return lambda config: iter(())

    with pytest.raises(TypeError, match=r"annotate it '-> _Plan\[...\]'"):
        _OnBothTransports(untyped)


def test_a_subclass_keeps_its_own_override_of_an_api_method():
    """Making a transport's methods never replaces a method a subclass (or its subclass) wrote itself."""

    class Mine(QStashHook):
        def cancel_message(self, message_id: str) -> Any:
            return f"mine: {message_id}"

    class Below(Mine):
        pass

    assert Below().cancel_message("m1") == "mine: m1"
    assert "cancel_message" not in vars(Below)
    assert inspect.getattr_static(Mine, "cancel_message") is vars(Mine)["cancel_message"]
