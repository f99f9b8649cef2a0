"""
Properties of the hooks over generated inputs (issue #17.11): for any connection host and extras, any
filter values, ids and retry overrides, on either transport, a call is EITHER refused before any request OR
sends requests no wider than the author's filters, and no text it produces holds the token (or a credential
given in an override header). See tests/doubles/harness.py for the transport double and the checks.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.inputs import retry_overrides
from tests.doubles.fake_qstash import Answer, FakeQStash, Rounds
from tests.doubles.harness import (
    captured_logs,
    check_selection,
    check_texts,
    dump,
    exception_texts,
    no_sleep,
    pinned_clock,
    requests_to,
    run_async,
    set_env,
    wire,
)
from tests.integration.properties import strategies as s

CONN_ID = "qstash_prop"
QUICK = {"max_retries": 1, "backoff_initial": 0, "backoff_max": 0, "timeout": 5}
OPERATIONS = ("bulk_cancel", "cancel_message", "dlq_delete", "dlq_retry", "delete_dlq_message", "list_dlq")
ALL_FLAGS = {"bulk_cancel": "cancel_all", "dlq_delete": "delete_all", "dlq_retry": "retry_all"}
SINGLE = {"cancel_message": "/v2/messages/", "delete_dlq_message": "/v2/dlq/"}


def hostile_answers(secret: str) -> st.SearchStrategy[list[Answer]]:
    """Answers that quote the secret: unreadable 2xx bodies, error bodies, a 2xx of the wrong shape."""
    answer = st.sampled_from(
        [
            Answer(200, text=f"<html>proxy says {secret}</html>"),
            Answer(200, {"cancelled": secret, "deleted": secret}),
            Answer(201, {"responses": secret}),
            Answer(200, [secret]),
            Answer(400, {"error": f"bad request, token {secret}"}),
            Answer(401, text=f"Bearer {secret} is not valid"),
            Answer(500, text=secret),
            Answer(404, {"error": f"not found: {secret}"}),
        ]
    )
    return st.lists(answer, max_size=2)


def was_set(name: str, value: Any) -> bool:
    """Whether a literal filter value carries something (what the hook must send or refuse)."""
    if value is None or value == "" or value == [] or value == ():
        return False
    return not (name == "from_date" and value in (0, "0"))


@st.composite
def hook_calls(
    draw: st.DrawFn, vary_host: bool = False, misplaced_token: bool = False, hostile: bool = False
) -> dict[str, Any]:
    """One hook call: the operation, its inputs, the connection (drawn, or a valid one), the server's answers."""
    token, header_secret = draw(s.secrets), draw(s.secrets)
    operation = draw(st.sampled_from(OPERATIONS))
    call: dict[str, Any] = {
        "token": token,
        "header_secret": header_secret,
        "host": draw(s.hosts())
        if vary_host
        else draw(s.hosts_with(token))
        if misplaced_token
        else "https://qstash.test",
        "extra": draw(s.extras(token)) if misplaced_token else QUICK,
        "operation": operation,
        "transport": draw(st.sampled_from(["requests", "httpx"])),
        "first": draw(st.integers(0, 3)),
        "hostile": draw(hostile_answers(token)) if hostile else [],
        "kwargs": {},
    }
    kwargs = call["kwargs"]
    if vary_host or misplaced_token:  # the connection is what varies: plain inputs, so its faults show
        kwargs.update({"ident": "msg_1"} if operation in SINGLE else {"labels": "a"})
        call["overrides"] = {}
        return call
    if operation in SINGLE:
        kwargs["ident"] = draw(s.ids())
    elif operation == "bulk_cancel":
        kwargs.update(draw(s.filters(s.MESSAGE_TABLE)))
    elif operation == "list_dlq":
        kwargs.update(draw(s.filters(s.DLQ_TABLE, skip=("dlq_ids", "flow_control_keys"))))
    else:
        kwargs.update(draw(s.filters(s.DLQ_TABLE)))
    if operation in ALL_FLAGS:
        kwargs[ALL_FLAGS[operation]] = draw(st.booleans())
    if operation == "dlq_retry":
        call["overrides"] = draw(s.override_headers(header_secret))
    return call


def _invoke(hook: Any, call: dict[str, Any]) -> Any:
    """The hook method call (a coroutine on the async hook)."""
    operation, kwargs = call["operation"], dict(call["kwargs"])
    if operation in SINGLE:
        return getattr(hook, operation)(kwargs["ident"])
    if operation == "dlq_retry":
        kwargs["headers"] = retry_overrides(headers=call["overrides"])
    return getattr(hook, operation)(**kwargs)


def run_call(call: dict[str, Any], server: FakeQStash) -> tuple[Any, BaseException | None]:
    if call["transport"] == "requests":
        hook = QStashHook(CONN_ID)
        try:
            return _invoke(hook, call), None
        except Exception as err:
            return None, err
        finally:
            hook.close()

    async def go() -> Any:
        hook = QStashAsyncHook(CONN_ID)
        try:
            return await _invoke(hook, call)
        finally:
            await hook.aclose()

    try:
        return run_async(go()), None
    except Exception as err:
        return None, err


@given(hook_calls())
def test_a_hook_call_is_refused_before_any_request_or_no_wider_than_its_filters(call: dict[str, Any]):
    """Any filters, ids and overrides, on a valid connection and a well-behaved server."""
    check_hook_call(call)


@given(hook_calls(hostile=True))
def test_a_server_answer_that_quotes_the_token_never_reaches_a_text(call: dict[str, Any]):
    """The same, with answers (2xx too) that quote the token: unreadable, of the wrong shape, errors."""
    check_hook_call(call)


@given(hook_calls(vary_host=True))
def test_any_connection_host_is_refused_or_keeps_every_request_on_its_path(call: dict[str, Any]):
    """The same, with the connection's host drawn too (a path, ?, #, userinfo, white space, a region...)."""
    check_hook_call(call)


@given(hook_calls(misplaced_token=True))
def test_an_extra_or_a_token_in_the_wrong_field_is_refused_without_echoing_it(call: dict[str, Any]):
    """
    The same, with one connection extra drawn (nan, inf, huge, text) and the token pasted where it does not
    belong (an extra, the host's userinfo, path or query): refused or read as finite numbers, never echoed.
    """
    check_hook_call(call)


def check_hook_call(call: dict[str, Any]) -> None:
    connection = {"conn_type": "qstash", "host": call["host"], "password": call["token"], "extra": call["extra"]}
    undo = set_env(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    server = Rounds(first=call["first"], hostile=list(call["hostile"]))
    try:
        with pinned_clock(), no_sleep(), wire(server), captured_logs() as logs:
            result, error = run_call(call, server)
            if server.sent:  # the connection was accepted: every number read from it is finite
                config = QStashHook(CONN_ID).config
                numbers = [config.timeout, config.poll_interval_max, *vars(config.retry).values()]
                assert all(math.isfinite(n) for n in numbers if isinstance(n, int | float)), config
    finally:
        undo()
    secrets = [call["token"], call["header_secret"]]
    # A summary the provider builds is a text (it becomes XCom); cancel_message and list_dlq return the
    # server's own data (a DLQ entry's body is the user's), which is not.
    summary = [dump(result)] if call["operation"] in ALL_FLAGS else []
    check_texts([*logs.texts, *exception_texts(error), *summary], secrets)
    if not server.sent:
        assert error is not None, "no request and no refusal"
        return
    operation, kwargs = call["operation"], call["kwargs"]
    table = s.MESSAGE_TABLE if operation == "bulk_cancel" else s.DLQ_TABLE
    set_filters = {
        spec.name: spec.param for spec in table.specs if spec.name in kwargs and was_set(spec.name, kwargs[spec.name])
    }
    single = (SINGLE[operation], kwargs["ident"]) if operation in SINGLE else None
    origin = requests_to(server)[0].origin
    assert "@" not in origin and " " not in origin, f"the base URL kept userinfo or white space: {origin}"
    check_selection(
        requests_to(server),
        origin=origin,
        set_filters=set_filters,
        all_flag=bool(kwargs.get(ALL_FLAGS.get(operation, ""), False)),
        single=single,
    )
    if operation == "dlq_retry":
        # An override the author gave is sent as given, on every retry request (never dropped).
        for request in requests_to(server):
            if request.kind is not None:
                for name, value in call["overrides"].items():
                    assert request.headers.get(name.lower()) == value.strip() or not value.strip(), (
                        name,
                        request.headers,
                    )
