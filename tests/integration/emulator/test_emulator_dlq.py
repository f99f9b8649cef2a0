"""The DLQ over real HTTP: arrival, listing, filters, cursors, bulk delete, bulk retry, 404s, faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from qstash_emulator import FaultConfig, QStashEmulator
from qstash_emulator.dlq import DeadLetterStore
from qstash_emulator.query import parse_dlq_query
from qstash_emulator.store import MessageStore
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000_000

#: Entries whose filters cover every DLQ filter; createdAt T0 + i * 1000.
ENTRIES: list[dict[str, Any]] = [
    {"dlqId": "d1", "messageId": "m1", "url": "https://a.example.com/x", "labels": ["red"], "queueName": "q1",
     "responseStatus": 500, "callerIp": "10.0.0.1", "createdAt": T0 + 1000, "body": "one"},
    {"dlqId": "d2", "messageId": "m2", "url": "https://a.example.com/x", "labels": ["red", "green"], "queueName": "q1",
     "topicName": "g1", "scheduleId": "s2", "responseStatus": 404, "callerIp": "10.0.0.1", "createdAt": T0 + 2000},
    {"dlqId": "d3", "messageId": "m3", "url": "https://b.example.com/y", "topicName": "g1", "flowControlKey": "f1",
     "responseStatus": 503, "callerIp": "10.0.0.3", "createdAt": T0 + 3000},
    {"dlqId": "d4", "messageId": "m4", "url": "https://c.example.org/z", "label": "green", "queueName": "q3",
     "topicName": "g2", "flowControlKey": "f3", "scheduleId": "s1", "responseStatus": 500, "callerIp": "10.0.0.2",
     "createdAt": T0 + 4000},
    {"dlqId": "d5", "messageId": "m5", "url": "http://a.example.com/x", "label": "blue,red", "queueName": "q2",
     "responseStatus": 429, "callerIp": "10.0.0.4", "createdAt": T0 + 5000},
    {"dlqId": "d6", "messageId": "m6", "url": "https://a.example.com/x", "labels": ["yellow"], "responseStatus": 500,
     "callerIp": "10.0.0.1", "createdAt": T0 + 6000},
]  # fmt: skip
ALL_DLQ = {e["dlqId"] for e in ENTRIES}


@pytest.fixture
def loaded(emu: QStashEmulator) -> QStashEmulator:
    assert emu.add_dlq(ENTRIES) == [e["dlqId"] for e in ENTRIES]
    return emu


def _list(api: Api, params: Any = None) -> dict[str, Any]:
    response = api.request("GET", "/v2/dlq", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [m["dlqId"] for m in body["messages"]]


# -- arrival ------------------------------------------------------------------------------------


def test_failed_messages_land_in_the_dlq_with_their_status(emu: QStashEmulator, api: Api) -> None:
    published = api.request(
        "POST",
        "/v2/enqueue/jobs/https://e.com/run",
        headers={"Upstash-Label": "nightly", "Upstash-Retries": "2"},
        data="payload",
    ).json()["messageId"]
    (other,) = emu.add_messages([{"url": "https://e.com/other"}])
    (dlq_id,) = emu.fail_messages([published, "msg_unknown"], response_status=502, response_body="bad gateway")
    assert emu.held_ids() == {other}
    assert api.request("GET", f"/v2/messages/{published}").status_code == 404
    entry = api.request("GET", f"/v2/dlq/{dlq_id}").json()
    assert entry["dlqId"] == dlq_id and entry["messageId"] == published
    assert entry["responseStatus"] == 502 and entry["responseBody"] == "bad gateway"
    assert entry["queueName"] == "jobs" and entry["labels"] == ["nightly"] and entry["maxRetries"] == 2
    assert entry["body"] == "payload"
    queues = api.request("GET", "/v2/queues").json()
    assert [q["lag"] for q in queues if q["name"] == "jobs"] == [0]


@pytest.mark.parametrize(
    "entry",
    [
        {"url": "https://e.com"},
        {"url": "https://e.com", "responseStatus": 99},
        {"url": "https://e.com", "responseStatus": "500"},
        {"url": "https://e.com", "responseStatus": 500, "createdAt": 10**30},
        {"url": "https://e.com", "responseStatus": 500, "nope": 1},
        {"url": "https://e.com", "responseStatus": 500, "dlqId": " "},
    ],
)
def test_admin_dlq_entries_are_validated(emu: QStashEmulator, entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        emu.add_dlq([entry])
    assert emu.dlq_count() == 0


def test_admin_fail_refuses_a_bad_status(emu: QStashEmulator) -> None:
    ids = emu.add_messages([{"url": "https://e.com/x"}])
    with pytest.raises(ValueError, match="responseStatus"):
        emu.fail_messages(ids, response_status=700)
    assert emu.held_ids() == set(ids) and emu.dlq_count() == 0


def test_seeded_dlq_is_reproducible_and_varied(emu: QStashEmulator) -> None:
    assert emu.seed_dlq(300, seed=4, now=T0) == 300
    first = [(e["messageId"], e["responseStatus"], e.get("labels")) for e in emu.dlq_entries()]
    emu.reset()
    emu.seed_dlq(300, seed=4, now=T0)
    assert [(e["messageId"], e["responseStatus"], e.get("labels")) for e in emu.dlq_entries()] == first
    assert {status for _, status, _ in first} == {500, 502, 503, 504, 404, 429, 400}
    assert emu.dlq_count() == 300 and len(emu.dlq_entries(limit=7)) == 7


# -- listing and cursors ---------------------------------------------------------------------------


def test_list_is_newest_first_and_pages_with_a_cursor(loaded: QStashEmulator, api: Api) -> None:
    assert _ids(_list(api)) == ["d6", "d5", "d4", "d3", "d2", "d1"]
    assert "cursor" not in _list(api)
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(10):
        body = _list(api, {"count": 4, **({} if cursor is None else {"cursor": cursor})})
        pages.append(_ids(body))
        cursor = body.get("cursor")
        if cursor is None:
            break
    assert pages == [["d6", "d5", "d4", "d3"], ["d2", "d1"]]
    assert _ids(_list(api, {"order": "earliestFirst", "count": 5})) == ["d1", "d2", "d3", "d4", "d5"]


def test_exactly_count_left_ends_without_cursor(loaded: QStashEmulator, api: Api) -> None:
    body = _list(api, {"count": 6})
    assert len(body["messages"]) == 6 and "cursor" not in body
    body = _list(api, {"count": 3})
    assert "cursor" in body
    assert "cursor" not in _list(api, {"count": 3, "cursor": body["cursor"]})


def test_default_count_is_100(emu: QStashEmulator, api: Api) -> None:
    emu.seed_dlq(150, seed=1)
    body = _list(api)
    assert len(body["messages"]) == 100 and "cursor" in body
    rest = _list(api, {"cursor": body["cursor"]})
    assert len(rest["messages"]) == 50 and "cursor" not in rest
    assert set(_ids(body)) | set(_ids(rest)) == emu.dlq_ids()


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"count": "101"}, "count"),
        ({"count": "0"}, "count"),
        ({"count": "5_0"}, "count"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"order": "random"}, "order"),
        ({"responseStatus": "5xx"}, "responseStatus"),
        ({"fromDate": "1" * 30}, "fromDate"),
    ],
)
def test_bad_parameters_are_400_and_touch_nothing(
    loaded: QStashEmulator, api: Api, method: str, params: dict[str, str], name: str
) -> None:
    path = "/v2/dlq/retry" if method == "POST" else "/v2/dlq"
    response = api.request(method, path, params=params)
    assert response.status_code == 400
    assert name in response.json()["error"]
    assert loaded.dlq_ids() == ALL_DLQ and loaded.held_ids() == set()


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize("name", ["host", "path"])
def test_host_and_path_are_refused_with_the_reason(loaded: QStashEmulator, api: Api, method: str, name: str) -> None:
    path = "/v2/dlq/retry" if method == "POST" else "/v2/dlq"
    response = api.request(method, path, params={name: "a.example.com", "label": "red"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert f"{name} is not a filter of the DLQ endpoints" in error and "url" in error
    assert loaded.dlq_ids() == ALL_DLQ and loaded.held_ids() == set()


# -- filters ---------------------------------------------------------------------------------------


def _model(params: list[tuple[str, str]]) -> set[str]:
    wanted: dict[str, set[str]] = {}
    for name, value in params:
        name = "callerIp" if name == "callerIP" else name
        wanted.setdefault(name, set()).update(v for v in value.split(",") if v)
    selected = set()
    for entry in ENTRIES:
        labels = set(entry.get("labels", [])) | set(entry.get("label", "").split(",")) - {""}
        fields = {
            "messageId": {entry["messageId"]},
            "url": {entry["url"]},
            "topicName": {entry.get("topicName")},
            "scheduleId": {entry.get("scheduleId")},
            "queueName": {entry.get("queueName")},
            "callerIp": {entry.get("callerIp")},
            "label": labels,
            "flowControlKey": {entry.get("flowControlKey")},
            "responseStatus": {str(entry["responseStatus"])},
        }
        ok = all(fields[name] & values for name, values in wanted.items() if name not in ("fromDate", "toDate"))
        if "fromDate" in wanted:
            ok = ok and entry["createdAt"] >= int(next(iter(wanted["fromDate"])))
        if "toDate" in wanted:
            ok = ok and entry["createdAt"] <= int(next(iter(wanted["toDate"])))
        if ok:
            selected.add(entry["dlqId"])
    return selected


FILTER_CASES: list[list[tuple[str, str]]] = [
    [("messageId", "m3")],
    [("url", "https://a.example.com/x")],
    [("url", "https://a.example.com/x,http://a.example.com/x")],
    [("topicName", "g1")],
    [("scheduleId", "s1"), ("scheduleId", "s2")],
    [("queueName", "q1,q3")],
    [("callerIp", "10.0.0.1")],
    [("callerIP", "10.0.0.4"), ("callerIp", "10.0.0.3")],
    [("label", "red")],
    [("label", "green,yellow")],
    [("flowControlKey", "f1,f3")],
    [("responseStatus", "500")],
    [("responseStatus", "404,429"), ("responseStatus", "503")],
    [("label", "red"), ("responseStatus", "500")],
    [("queueName", "q1"), ("topicName", "g1")],
    [("fromDate", str(T0 + 2000)), ("toDate", str(T0 + 4000))],
    [("responseStatus", "500"), ("fromDate", str(T0 + 4000))],
    [("label", "red"), ("url", "https://a.example.com/x"), ("callerIp", "10.0.0.1"), ("toDate", str(T0 + 1000))],
    [("label", "nothing")],
    [("fromDate", str(T0 + 5000)), ("toDate", str(T0 + 1000))],
]


def _case_id(case: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in case)


@pytest.mark.parametrize("params", FILTER_CASES, ids=_case_id)
def test_list_filters_match_a_naive_model(loaded: QStashEmulator, api: Api, params: list[tuple[str, str]]) -> None:
    assert set(_ids(_list(api, params))) == _model(params)


@pytest.mark.parametrize("params", FILTER_CASES, ids=_case_id)
def test_bulk_delete_removes_exactly_the_filter(
    loaded: QStashEmulator, api: Api, params: list[tuple[str, str]]
) -> None:
    response = api.request("DELETE", "/v2/dlq", params=params)
    assert response.status_code == 200
    expected = _model(params)
    assert response.json() == {"deleted": len(expected)}
    assert loaded.dlq_ids() == ALL_DLQ - expected


def test_bulk_delete_pages_until_no_cursor(emu: QStashEmulator, api: Api) -> None:
    emu.seed_dlq(400, seed=3)
    matching = {e["dlqId"] for e in emu.dlq_entries() if e["responseStatus"] == 500}
    others = emu.dlq_ids() - matching
    deleted, requests_made, cursor = 0, 0, None
    while requests_made < 50:
        params = {"responseStatus": "500", "count": "7", **({} if cursor is None else {"cursor": cursor})}
        body = api.request("DELETE", "/v2/dlq", params=params).json()
        requests_made += 1
        deleted += body["deleted"]
        assert body["deleted"] <= 7
        cursor = body.get("cursor")
        if cursor is None:
            break
    assert deleted == len(matching) > 7
    assert requests_made == -(-len(matching) // 7)  # the last page comes back without a cursor
    assert emu.dlq_ids() == others


def test_bulk_delete_without_the_cursor_also_ends(loaded: QStashEmulator, api: Api) -> None:
    answers = [api.request("DELETE", "/v2/dlq", params={"count": "4"}).json() for _ in range(2)]
    assert answers[0]["deleted"] == 4 and "cursor" in answers[0]
    assert answers[1] == {"deleted": 2}
    assert loaded.dlq_count() == 0


def test_bulk_delete_by_ids_ignores_filters_and_count(loaded: QStashEmulator, api: Api) -> None:
    params = [("dlqIds", "d1,d2"), ("dlqIds", "d3"), ("dlqIds", "gone"), ("count", "1"), ("label", "yellow")]
    assert api.request("DELETE", "/v2/dlq", params=params).json() == {"deleted": 3}
    assert loaded.dlq_ids() == {"d4", "d5", "d6"}


def test_no_filter_deletes_a_page_of_everything(loaded: QStashEmulator, api: Api) -> None:
    assert api.request("DELETE", "/v2/dlq").json() == {"deleted": 6}
    assert loaded.dlq_count() == 0


def test_single_get_and_delete(loaded: QStashEmulator, api: Api) -> None:
    entry = api.request("GET", "/v2/dlq/d1").json()
    assert entry["messageId"] == "m1" and entry["responseStatus"] == 500 and entry["body"] == "one"
    deleted = api.request("DELETE", "/v2/dlq/d1")
    assert deleted.status_code == 200 and deleted.content == b""
    for method in ("GET", "DELETE"):
        response = api.request(method, "/v2/dlq/d1")
        assert response.status_code == 404 and "d1" in response.json()["error"]
    assert loaded.dlq_ids() == ALL_DLQ - {"d1"}


# -- retry -----------------------------------------------------------------------------------------


def test_retry_by_filter_reenqueues_new_messages_and_empties_the_entries(loaded: QStashEmulator, api: Api) -> None:
    response = api.request("POST", "/v2/dlq/retry", params={"label": "red"})
    assert response.status_code == 201
    body = response.json()
    assert "cursor" not in body
    new_ids = [r["messageId"] for r in body["responses"]]
    assert len(new_ids) == 3 and not set(new_ids) & {"m1", "m2", "m5"}
    assert loaded.dlq_ids() == ALL_DLQ - {"d1", "d2", "d5"}
    assert loaded.held_ids() == set(new_ids)
    by_id = {m["messageId"]: m for m in loaded.messages()}
    retried_m1 = next(m for m in by_id.values() if m.get("body") == "one")
    assert retried_m1["url"] == "https://a.example.com/x" and retried_m1["labels"] == ["red"]
    assert retried_m1["queueName"] == "q1" and retried_m1["maxRetries"] == 3


def test_retry_headers_override_and_are_recorded(loaded: QStashEmulator, api: Api) -> None:
    headers = {"Upstash-Retries": "0", "Upstash-Forward-X-Replay": "incident-7", "Upstash-Delay": "10s"}
    response = api.request("POST", "/v2/dlq/retry", params={"dlqIds": "d1"}, headers=headers)
    assert response.status_code == 201
    (new_id,) = [r["messageId"] for r in response.json()["responses"]]
    (message,) = loaded.messages()
    assert message["messageId"] == new_id and message["maxRetries"] == 0
    assert message["header"] == {"x-replay": ["incident-7"]}
    assert message["upstashHeaders"] == {
        "upstash-retries": "0",
        "upstash-forward-x-replay": "incident-7",
        "upstash-delay": "10s",
    }


@pytest.mark.parametrize("value", ["-1", "abc", "101", "1_0"])
def test_retry_refuses_a_bad_retries_header(loaded: QStashEmulator, api: Api, value: str) -> None:
    response = api.request("POST", "/v2/dlq/retry", params={"dlqIds": "d1"}, headers={"Upstash-Retries": value})
    assert response.status_code == 400 and "Upstash-Retries" in response.json()["error"]
    assert loaded.dlq_ids() == ALL_DLQ and loaded.held_ids() == set()


def test_retry_with_a_gone_id_is_404_and_retries_nothing(loaded: QStashEmulator, api: Api) -> None:
    response = api.request("POST", "/v2/dlq/retry", params={"dlqIds": "d1,gone-1,d2,gone-2"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert "gone-1" in error and "gone-2" in error and "d1" not in error.split(":")[-1]
    assert loaded.dlq_ids() == ALL_DLQ and loaded.held_ids() == set()
    ok = api.request("POST", "/v2/dlq/retry", params={"dlqIds": "d1,d2"})
    assert ok.status_code == 201 and len(ok.json()["responses"]) == 2


def test_retry_pages_like_the_bulk_delete(loaded: QStashEmulator, api: Api) -> None:
    first = api.request("POST", "/v2/dlq/retry", params={"count": "4"}).json()
    assert len(first["responses"]) == 4 and "cursor" in first
    second = api.request("POST", "/v2/dlq/retry", params={"count": "4", "cursor": first["cursor"]}).json()
    assert len(second["responses"]) == 2 and "cursor" not in second
    assert loaded.dlq_count() == 0 and len(loaded.held_ids()) == 6


def test_single_retry(loaded: QStashEmulator, api: Api) -> None:
    response = api.request("POST", "/v2/dlq/retry/d3", headers={"Upstash-Retries": "1"})
    assert response.status_code == 201
    new_id = response.json()["messageId"]
    assert api.request("GET", f"/v2/messages/{new_id}").json()["maxRetries"] == 1
    assert api.request("POST", "/v2/dlq/retry/d3").status_code == 404
    assert loaded.dlq_ids() == ALL_DLQ - {"d3"}


def test_publish_records_upstash_headers_and_refuses_bad_retries(emu: QStashEmulator, api: Api) -> None:
    response = api.request("POST", "/v2/publish/https://e.com/x", headers={"Upstash-Retries": "5_0"})
    assert response.status_code == 400 and emu.counts()["held"] == 0
    response = api.request("POST", "/v2/publish/https://e.com/x", headers={"Upstash-Retries": "7"})
    assert api.request("GET", f"/v2/messages/{response.json()['messageId']}").json()["maxRetries"] == 7


# -- auth, faults, persistence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v2/dlq"), ("DELETE", "/v2/dlq"), ("POST", "/v2/dlq/retry"), ("GET", "/v2/dlq/d1"),
     ("DELETE", "/v2/dlq/d1"), ("POST", "/v2/dlq/retry/d1")],
)  # fmt: skip
def test_dlq_routes_need_the_token(loaded: QStashEmulator, method: str, path: str) -> None:
    assert requests.request(method, loaded.base_url + path, timeout=10).status_code == 401
    assert loaded.dlq_ids() == ALL_DLQ


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/v2/dlq"), ("POST", "/v2/dlq/retry"), ("GET", "/v2/dlq")])
def test_faults_apply_to_dlq_routes(loaded: QStashEmulator, api: Api, method: str, path: str) -> None:
    loaded.set_faults(FaultConfig(rate_5xx=1.0, statuses_5xx=(503,)))
    assert api.request(method, path).status_code == 503
    loaded.set_faults(FaultConfig(rate_429_daily=1.0))
    response = api.request(method, path)
    assert response.status_code == 429 and response.headers["RateLimit-Remaining"] == "0"
    loaded.set_faults(FaultConfig(rate_drop=1.0))
    with pytest.raises(requests.ConnectionError):
        api.request(method, path)
    assert loaded.dlq_ids() == ALL_DLQ and loaded.held_ids() == set()
    assert [e["fault"] for e in loaded.request_log()] == ["5xx", "429_daily", "drop"]


def test_dlq_survives_a_restart_with_db(tmp_path: Path) -> None:
    db = str(tmp_path / "dlq.sqlite")
    with QStashEmulator(token=TOKEN, db=db) as first:
        first.add_dlq(ENTRIES)
    with QStashEmulator(token=TOKEN, db=db) as second:
        assert second.dlq_ids() == ALL_DLQ
        assert Api(second).request("GET", "/v2/dlq", params={"label": "red"}).json()["messages"][0]["dlqId"] == "d5"


def test_dlq_queries_use_an_index_for_every_driving_filter() -> None:
    store = MessageStore()
    try:
        dlq = DeadLetterStore(store)
        for params in (
            [],
            [("label", "a")],
            [("responseStatus", "500")],
            [("url", "https://e.com/x"), ("label", "b")],
            [("queueName", "q"), ("cursor", "5.6")],
            [("messageId", "m")],
        ):
            for plan in dlq.explain(parse_dlq_query(params, allow_ids=True)):
                first_step = plan.split(";")[0]
                assert ("USING" in first_step and "INDEX" in first_step) or "PRIMARY KEY" in first_step, plan
                assert "TEMP B-TREE" not in plan, plan
    finally:
        store.close()
