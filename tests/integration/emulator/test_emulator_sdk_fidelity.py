"""The emulator's fidelity fixes of issue 18 (what the official SDKs send and expect), in both generations.

Each test names the defect it guards: before the fix the emulator acted wider than the request
(ids in a JSON body ignored), answered what the SDKs cannot parse (no ``notBefore``, a single cancel
without a body, a URL-group publish as one object) or lacked a route of today's API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qstash_emulator import FaultConfig, QStashEmulator
from qstash_emulator.actions import DLQ_DELETE_KIND, DLQ_RETRY_KIND
from qstash_emulator.headers import MAX_DELAY_MS, parse_delay
from qstash_emulator.query import QueryError
from qstash_emulator.request_body import parse_ids_body
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

GENERATIONS = ("actions", "legacy")


@pytest.fixture(scope="module", params=GENERATIONS)
def generation_emulator(request: pytest.FixtureRequest) -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TOKEN, bulk_cancel=request.param, action_rate=5000, sync_wait=10) as emu:
        yield emu


@pytest.fixture
def emu(generation_emulator: QStashEmulator) -> Iterator[QStashEmulator]:
    generation_emulator.reset()
    yield generation_emulator
    generation_emulator.set_faults(None)


@pytest.fixture
def api(emu: QStashEmulator) -> Iterator[Api]:
    client = Api(emu)
    yield client
    client.session.close()


def _held(emu: QStashEmulator, n: int) -> list[str]:
    return emu.add_messages([{"url": f"https://e.example/{i}", "labels": ["x"]} for i in range(n)])


def _dlq(emu: QStashEmulator, n: int, **extra: Any) -> list[str]:
    return emu.add_dlq(
        [{"url": f"https://e.example/{i}", "responseStatus": 500, "body": f"b{i}", **extra} for i in range(n)]
    )


def _legacy(emu: QStashEmulator) -> bool:
    return emu.state.bulk_cancel.name == "legacy"


# -- ids in a JSON body ---------------------------------------------------------------------------


def test_message_ids_in_a_json_body_cancel_exactly_those(emu: QStashEmulator, api: Api) -> None:
    ids = _held(emu, 7)
    response = api.request("DELETE", "/v2/messages", json={"messageIds": ids[:2]})
    assert (response.status_code, response.json()) == (200, {"cancelled": 2})
    assert emu.held_ids() == set(ids[2:])


def test_dlq_ids_in_a_json_body_delete_exactly_those(emu: QStashEmulator, api: Api) -> None:
    ids = _dlq(emu, 4)
    response = api.request("DELETE", "/v2/dlq", json={"dlqIds": ids[:1]})
    assert (response.status_code, response.json()) == (200, {"deleted": 1})
    assert emu.dlq_ids() == set(ids[1:])


def test_dlq_ids_in_a_json_body_retry_exactly_those(emu: QStashEmulator, api: Api) -> None:
    ids = _dlq(emu, 3)
    response = api.request("POST", "/v2/dlq/retry", json={"dlqIds": ids[1:2]})
    assert response.status_code == 201
    (new,) = response.json()["responses"]
    assert emu.dlq_ids() == {ids[0], ids[2]}
    assert api.request("GET", f"/v2/messages/{new['messageId']}").json()["body"] == "b1"


def test_an_empty_id_list_touches_nothing(emu: QStashEmulator, api: Api) -> None:
    held, dead = _held(emu, 3), _dlq(emu, 3)
    assert api.request("DELETE", "/v2/messages", json={"messageIds": []}).json() == {"cancelled": 0}
    assert api.request("DELETE", "/v2/dlq", json={"dlqIds": []}).json() == {"deleted": 0}
    assert api.request("POST", "/v2/dlq/retry", json={"dlqIds": []}).json() == {"responses": []}
    assert emu.held_ids() == set(held) and emu.dlq_ids() == set(dead)


UNREADABLE_BODIES = [
    b"not json",
    b"\xff\xfe",
    b'["m1"]',
    b'"m1"',
    b"{}",
    b'{"ids": ["m1"]}',
    b'{"messageIds": ["m1"], "dlqIds": ["d1"], "extra": 1}',
    b'{"messageIds": "m1"}',
    b'{"messageIds": [1, 2]}',
    b'{"messageIds": [""]}',
    b'{"messageIds": null}',
    b'{"dlqIds": "d1"}',
    b'{"dlqIds": [null]}',
]


@pytest.mark.parametrize("body", UNREADABLE_BODIES, ids=lambda b: b.decode("latin-1"))
@pytest.mark.parametrize(
    ("method", "path", "key"),
    [("DELETE", "/v2/messages", "messageIds"), ("DELETE", "/v2/dlq", "dlqIds"), ("POST", "/v2/dlq/retry", "dlqIds")],
)
def test_an_unreadable_body_is_a_400_and_touches_nothing(
    emu: QStashEmulator, api: Api, body: bytes, method: str, path: str, key: str
) -> None:
    try:
        ok = parse_ids_body(body, key) is not None
    except QueryError:
        ok = False
    if ok:  # a body that is fine for this route (e.g. {"dlqIds": [...]} on the DLQ) is tested elsewhere
        return
    held, dead = _held(emu, 3), _dlq(emu, 3)
    response = api.request(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "error" in response.json()
    assert emu.held_ids() == set(held) and emu.dlq_ids() == set(dead)


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        ("DELETE", "/v2/messages", {"messageIds": ["m0"]}, {"label": "x"}),
        ("DELETE", "/v2/messages", {"messageIds": ["m0"]}, {"messageIds": "m1"}),
        ("DELETE", "/v2/dlq", {"dlqIds": ["d0"]}, {"url": "https://e.example/1"}),
        ("DELETE", "/v2/dlq", {"dlqIds": ["d0"]}, {"dlqIds": "d1"}),
        ("POST", "/v2/dlq/retry", {"dlqIds": ["d0"]}, {"responseStatus": "500"}),
    ],
)
def test_body_ids_beside_query_filters_are_a_400(
    emu: QStashEmulator, api: Api, method: str, path: str, body: dict[str, Any], query: dict[str, str]
) -> None:
    held = emu.add_messages([{"messageId": f"m{i}", "url": "https://e.example/", "labels": ["x"]} for i in range(2)])
    dead = emu.add_dlq([{"dlqId": f"d{i}", "url": "https://e.example/1", "responseStatus": 500} for i in range(2)])
    response = api.request(method, path, json=body, params=query)
    assert response.status_code == 400, response.text
    assert emu.held_ids() == set(held) and emu.dlq_ids() == set(dead)


def test_parse_ids_body_keeps_order_and_drops_repeats() -> None:
    assert parse_ids_body(b'{"dlqIds": ["b", "a", "b"]}', "dlqIds") == ("b", "a")
    assert parse_ids_body(b"  \n", "dlqIds") is None


# -- notBefore, Upstash-Delay, Upstash-Not-Before -------------------------------------------------


def test_messages_and_dlq_entries_answer_not_before(emu: QStashEmulator, api: Api) -> None:
    (mid,) = emu.add_messages([{"url": "https://e.example/", "createdAt": 1_700_000_000_000}])
    assert api.request("GET", f"/v2/messages/{mid}").json()["notBefore"] == 1_700_000_000_000
    (did,) = emu.add_dlq([{"url": "https://e.example/", "responseStatus": 500, "createdAt": 1_700_000_000_000}])
    assert api.request("GET", f"/v2/dlq/{did}").json()["notBefore"] == 1_700_000_000_000
    (listed,) = api.request("GET", "/v2/dlq").json()["messages"]
    assert listed["notBefore"] == 1_700_000_000_000


@pytest.mark.parametrize(("delay", "ms"), [("90s", 90_000), ("2m", 120_000), ("1h30m", 5_400_000), ("1d", 86_400_000)])
def test_upstash_delay_sets_not_before(emu: QStashEmulator, api: Api, delay: str, ms: int) -> None:
    response = api.request("POST", "/v2/publish/https://e.example/x", headers={"Upstash-Delay": delay}, data="hi")
    message = api.request("GET", f"/v2/messages/{response.json()['messageId']}").json()
    assert message["notBefore"] - message["createdAt"] == ms


def test_upstash_not_before_wins_over_delay(emu: QStashEmulator, api: Api) -> None:
    headers = {"Upstash-Delay": "10s", "Upstash-Not-Before": "2000000000"}
    response = api.request("POST", "/v2/enqueue/q1/https://e.example/x", headers=headers, data="hi")
    message = api.request("GET", f"/v2/messages/{response.json()['messageId']}").json()
    assert message["notBefore"] == 2_000_000_000_000


@pytest.mark.parametrize(
    "headers",
    [{"Upstash-Delay": "10"}, {"Upstash-Delay": "-1s"}, {"Upstash-Delay": "1w"}, {"Upstash-Not-Before": "soon"}],
)
def test_an_unreadable_delay_is_a_400_and_creates_nothing(
    emu: QStashEmulator, api: Api, headers: dict[str, str]
) -> None:
    response = api.request("POST", "/v2/publish/https://e.example/x", headers=headers, data="hi")
    assert response.status_code == 400, response.text
    assert emu.counts() == {"held": 0, "cancelled": 0}


def test_parse_delay_bounds() -> None:
    assert parse_delay("1500ms") == 1500
    with pytest.raises(QueryError):
        parse_delay(f"{MAX_DELAY_MS // 1000 + 1}s")


# -- single cancel, URL groups ---------------------------------------------------------------------


def test_single_cancel_answers_202_with_a_count(emu: QStashEmulator, api: Api) -> None:
    ids = _held(emu, 2)
    response = api.request("DELETE", f"/v2/messages/{ids[0]}")
    assert (response.status_code, response.json()) == (202, {"cancelled": 1})
    assert emu.held_ids() == {ids[1]}


def test_url_groups_fan_out_and_an_unknown_group_is_404(emu: QStashEmulator, api: Api) -> None:
    assert api.request("POST", "/v2/publish/nogroup", data="x").status_code == 404
    assert emu.counts() == {"held": 0, "cancelled": 0}
    endpoints = {"endpoints": [{"url": "https://a.example/"}, {"url": "https://b.example/", "name": "b"}]}
    assert api.request("POST", "/v2/topics/g1/endpoints", json=endpoints).status_code == 200
    group = api.request("GET", "/v2/topics/g1").json()
    assert group["endpoints"] == [{"url": "https://a.example/"}, {"url": "https://b.example/", "name": "b"}]
    answer = api.request("POST", "/v2/enqueue/q1/g1", data="x").json()
    assert [a["url"] for a in answer] == ["https://a.example/", "https://b.example/"]
    assert emu.counts()["held"] == 2
    remove = {"endpoints": [{"name": "b"}]}
    assert api.request("DELETE", "/v2/topics/g1/endpoints", json=remove).status_code == 200
    assert [a["url"] for a in api.request("POST", "/v2/publish/g1", data="x").json()] == ["https://a.example/"]
    assert [g["name"] for g in api.request("GET", "/v2/topics").json()] == ["g1"]
    assert api.request("DELETE", "/v2/topics/g1").status_code == 200
    assert api.request("GET", "/v2/topics/g1").status_code == 404


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"endpoints": []}', b'{"endpoints": [{"url": "ftp://x"}]}', b'{"endpoints": [{}]}', b'{"x": 1}'],
)
def test_url_group_bodies_are_read_strictly(emu: QStashEmulator, api: Api, body: bytes) -> None:
    assert api.request("POST", "/v2/topics/g1/endpoints", data=body).status_code == 400
    assert api.request("GET", "/v2/topics").json() == []


# -- GET /v2/dlq -------------------------------------------------------------------------------------


def test_dlq_list_honours_dlq_ids_and_flow_control_key(emu: QStashEmulator, api: Api) -> None:
    ids = _dlq(emu, 4)
    keyed = emu.add_dlq([{"url": "https://e.example/k", "responseStatus": 500, "flowControlKey": "fk"}])
    listed = api.request("GET", "/v2/dlq", params=[("dlqIds", ids[0]), ("dlqIds", ids[2])]).json()
    assert {m["dlqId"] for m in listed["messages"]} == {ids[0], ids[2]} and "cursor" not in listed
    by_key = api.request("GET", "/v2/dlq", params={"flowControlKey": "fk"}).json()["messages"]
    assert [m["dlqId"] for m in by_key] == keyed


# -- the DLQ routes of today's API ----------------------------------------------------------------------


def test_multi_delete_by_query_or_body(emu: QStashEmulator, api: Api) -> None:
    ids = _dlq(emu, 5)
    by_query = api.request("DELETE", "/v2/dlq/multi", params={"dlqIds": f"{ids[0]},{ids[1]}"})
    if _legacy(emu):
        assert by_query.status_code == 404
        assert emu.dlq_ids() == set(ids)
        return
    assert (by_query.status_code, by_query.json()) == (200, {"deleted": 2})
    by_body = api.request("DELETE", "/v2/dlq/multi", json={"dlqIds": [ids[2], "dlq_gone"]})
    assert (by_body.status_code, by_body.json()) == (200, {"deleted": 1})
    assert emu.dlq_ids() == set(ids[3:])


def test_multi_retry_keeps_the_new_ids(emu: QStashEmulator, api: Api) -> None:
    ids = _dlq(emu, 3)
    response = api.request("POST", "/v2/dlq/retry/multi", json={"dlqIds": ids[:2]}, headers={"Upstash-Retries": "0"})
    if _legacy(emu):
        assert response.status_code == 404 and emu.dlq_ids() == set(ids)
        return
    assert response.status_code == 201
    new_ids = [r["messageId"] for r in response.json()["responses"]]
    assert len(new_ids) == 2 and emu.dlq_ids() == {ids[2]}
    assert {api.request("GET", f"/v2/messages/{i}").json()["maxRetries"] for i in new_ids} == {0}
    missing = api.request("POST", "/v2/dlq/retry/multi", params={"dlqIds": f"{ids[2]},dlq_gone"})
    assert missing.status_code == 404 and emu.dlq_ids() == {ids[2]}


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({}, None),
        ({"dlqIds": ","}, None),
        ({"dlqIds": "d0"}, {"dlqIds": ["d1"]}),
        ({"dlqIds": "d0", "url": "https://e.example/1"}, None),
        ({}, {"dlqIds": "d0"}),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("DELETE", "/v2/dlq/multi"), ("POST", "/v2/dlq/retry/multi")])
def test_multi_refuses_what_it_cannot_read(
    emu: QStashEmulator, api: Api, params: dict[str, str], body: Any, method: str, path: str
) -> None:
    dead = emu.add_dlq([{"dlqId": f"d{i}", "url": "https://e.example/1", "responseStatus": 500} for i in range(2)])
    data = None if body is None else json.dumps(body)
    response = api.request(method, path, params=params, data=data)
    assert response.status_code == (404 if _legacy(emu) else 400), response.text
    assert emu.dlq_ids() == set(dead)


def test_bulk_delete_is_an_async_action_over_the_accept_time_snapshot(emu: QStashEmulator, api: Api) -> None:
    a = _dlq(emu, 30, label="a")
    b = _dlq(emu, 5, label="b")
    response = api.request("DELETE", "/v2/dlq/bulk", params={"label": "a"})
    if _legacy(emu):
        assert response.status_code == 404 and emu.dlq_count() == 35
        return
    assert response.status_code == 202, response.text
    action = response.json()
    assert (action["kind"], action["total"], action["filter"]) == (DLQ_DELETE_KIND, 30, {"label": ["a"]})
    late = _dlq(emu, 3, label="a")  # after acceptance: not in the snapshot
    emu.wait_actions_idle(timeout=30)
    assert emu.dlq_ids() == set(b) | set(late)
    assert not set(a) & emu.dlq_ids()
    done = api.request("GET", f"/v2/bulkActions/{action['actionId']}").json()
    assert (done["state"], done["processed"], done["kind"]) == ("FINISHED", 30, DLQ_DELETE_KIND)
    listed = api.request("GET", "/v2/bulkActions").json()["bulkActions"]
    assert [x["kind"] for x in listed] == [DLQ_DELETE_KIND]


def test_bulk_retry_creates_messages_with_the_original_body_then_removes(emu: QStashEmulator, api: Api) -> None:
    _dlq(emu, 4, label="r")
    keep = _dlq(emu, 2, label="k")
    response = api.request("POST", "/v2/dlq/retry/bulk", params={"label": "r"}, headers={"Upstash-Retries": "1"})
    if _legacy(emu):
        assert response.status_code == 404 and emu.dlq_count() == 6 and emu.counts()["held"] == 0
        return
    assert response.status_code == 202 and response.json()["kind"] == DLQ_RETRY_KIND
    emu.wait_actions_idle(timeout=30)
    assert emu.dlq_ids() == set(keep)
    messages = emu.messages("held")
    assert sorted(m["body"] for m in messages) == ["b0", "b1", "b2", "b3"]
    assert {m["maxRetries"] for m in messages} == {1}


def test_identical_filters_in_progress_return_the_existing_action(generation_emulator: QStashEmulator) -> None:
    if _legacy(generation_emulator):
        return  # the bulk routes are 404 there (test_bulk_delete_...)
    with QStashEmulator(token=TOKEN, bulk_cancel="actions", action_rate=20) as emu, Api(emu).session as session:
        _dlq(emu, 200, label="a")
        url = emu.base_url + "/v2/dlq/bulk"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        first = session.delete(url, params=[("label", "a"), ("fromDate", "0")], headers=headers, timeout=10).json()
        again = session.delete(url, params=[("fromDate", "0"), ("label", "a")], headers=headers, timeout=10)
        assert again.status_code == 202 and again.json()["actionId"] == first["actionId"]
        retry = session.post(
            emu.base_url + "/v2/dlq/retry/bulk", params={"label": "a"}, headers=headers, timeout=10
        ).json()
        assert retry["actionId"] != first["actionId"]  # another kind: a separate action
        same_retry = session.post(
            emu.base_url + "/v2/dlq/retry/bulk", params={"label": "a"}, headers=headers, timeout=10
        ).json()
        assert same_retry["actionId"] == retry["actionId"]
        overrides = {**headers, "Upstash-Retries": "0"}
        other = session.post(
            emu.base_url + "/v2/dlq/retry/bulk", params={"label": "a"}, headers=overrides, timeout=10
        ).json()
        assert other["actionId"] != retry["actionId"]  # other overrides: not identical, not joined
        assert len(emu.bulk_actions()) == 3


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"dlqIds": "d0"}, None),
        ({"cursor": "1.1"}, None),
        ({"label": "a"}, b'{"dlqIds": ["d0"]}'),
        ({"count": "0"}, None),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("DELETE", "/v2/dlq/bulk"), ("POST", "/v2/dlq/retry/bulk")])
def test_bulk_refuses_ids_cursor_and_a_body(
    emu: QStashEmulator, api: Api, params: dict[str, str], body: bytes | None, method: str, path: str
) -> None:
    dead = emu.add_dlq([{"dlqId": f"d{i}", "url": "https://e.example/1", "responseStatus": 500} for i in range(2)])
    response = api.request(method, path, params=params, data=body)
    assert response.status_code == (404 if _legacy(emu) else 400), response.text
    assert emu.dlq_ids() == set(dead) and emu.bulk_actions() == []


def test_sync_filter_cancel_reports_the_accept_time_snapshot(emu: QStashEmulator, api: Api) -> None:
    ids = _held(emu, 10)
    api.request("DELETE", f"/v2/messages/{ids[0]}")  # before: not in the snapshot
    if _legacy(emu):
        assert api.cancelled({"label": "x"}) == 9
        return
    emu.set_faults(FaultConfig(rate_action_partial=1.0))
    response = api.cancel({"label": "x"})
    # The action really cancels fewer than its 9 (an emulated partial action); the answer is the snapshot.
    assert (response.status_code, response.json()) == (200, {"cancelled": 9})
    assert 0 < len(emu.held_ids()) <= 9


# -- POST /v2/batch -----------------------------------------------------------------------------------


def test_batch_creates_every_entry_and_answers_in_order(emu: QStashEmulator, api: Api) -> None:
    api.request("POST", "/v2/topics/g1/endpoints", json={"endpoints": [{"url": "https://a.example/"}]})
    entries = [
        {"destination": "https://n.example/", "headers": {"Upstash-Delay": "5s"}, "body": "1"},
        {"destination": "g1", "body": "2", "queue": "q1"},
    ]
    response = api.request("POST", "/v2/batch", json=entries)
    assert response.status_code == 200, response.text
    first, second = response.json()
    assert isinstance(first["messageId"], str) and [x["url"] for x in second] == ["https://a.example/"]
    by_body = {m["body"]: m for m in emu.messages("held")}
    assert by_body["1"]["notBefore"] - by_body["1"]["createdAt"] == 5000
    assert (by_body["2"]["topicName"], by_body["2"]["queueName"]) == ("g1", "q1")


@pytest.mark.parametrize(
    ("entries", "status"),
    [
        ([{"destination": "https://n.example/"}, {"destination": "nogroup"}], 404),
        ([{"destination": "https://n.example/"}, {"destination": "https://n.example/", "extra": 1}], 400),
        ([{"destination": "https://n.example/", "headers": {"Upstash-Delay": "soon"}}], 400),
        ([{"destination": "https://n.example/", "body": 5}], 400),
        ({"destination": "https://n.example/"}, 400),
        ([], 400),
    ],
)
def test_batch_with_one_bad_entry_creates_nothing(emu: QStashEmulator, api: Api, entries: Any, status: int) -> None:
    response = api.request("POST", "/v2/batch", json=entries)
    assert response.status_code == status, response.text
    assert emu.counts() == {"held": 0, "cancelled": 0}


# -- unknown query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("DELETE", "/v2/messages", {"lable": "x"}),
        ("DELETE", "/v2/messages", {"messageId": "m0"}),
        ("DELETE", "/v2/dlq", {"lable": "x"}),
        ("DELETE", "/v2/dlq", {"dlqId": "d0"}),
        ("POST", "/v2/dlq/retry", {"status": "500"}),
        ("GET", "/v2/dlq", {"lable": "x"}),
        ("DELETE", "/v2/dlq/multi", {"dlqIds": "d0", "dlqid": "d1"}),
        ("DELETE", "/v2/dlq/bulk", {"lable": "x"}),
        ("POST", "/v2/dlq/retry/bulk", {"urls": "https://e.example/1"}),
    ],
)
def test_an_unknown_query_parameter_is_a_400_never_no_filter(
    emu: QStashEmulator, api: Api, method: str, path: str, params: dict[str, str]
) -> None:
    held = emu.add_messages([{"messageId": f"m{i}", "url": "https://e.example/", "labels": ["x"]} for i in range(2)])
    dead = emu.add_dlq([{"dlqId": f"d{i}", "url": "https://e.example/1", "responseStatus": 500} for i in range(2)])
    response = api.request(method, path, params=params)
    legacy_404 = _legacy(emu) and path.endswith(("/multi", "/bulk"))
    assert response.status_code == (404 if legacy_404 else 400), response.text
    assert emu.held_ids() == set(held) and emu.dlq_ids() == set(dead) and emu.bulk_actions() == []


def test_a_dlq_action_progresses_at_the_action_rate() -> None:
    """The worker's clock is passed in (``step(now=...)``): no wall-clock dependence."""
    from qstash_emulator.actions import ActionRunner, ActionStore
    from qstash_emulator.dlq import DeadLetterStore
    from qstash_emulator.query import DlqQuery
    from qstash_emulator.store import MessageStore

    store = MessageStore()
    try:
        actions, dlq = ActionStore(store), DeadLetterStore(store)
        actions.register(DLQ_DELETE_KIND, dlq.process_delete)
        dlq.add([{"url": "https://e.example/", "responseStatus": 500} for _ in range(100)])
        query = DlqQuery()
        started = actions.start_snapshot(DLQ_DELETE_KIND, {}, lambda: dlq.snapshot(query))
        assert started.action is not None and started.action["total"] == 100
        runner = ActionRunner(actions, rate=20)
        runner.step(now=1000.0)
        runner.step(now=1001.5)  # 1.5 s at 20/s
        (action,) = actions.all()
        assert (action["processed"], action["cancelled"], dlq.count()) == (30, 30, 70)
        assert not runner.step(now=1010.0)  # 10 s: all 100 done
        (action,) = actions.all()
        assert (action["state"], action["processed"], dlq.count()) == ("FINISHED", 100, 0)
    finally:
        store.close()
