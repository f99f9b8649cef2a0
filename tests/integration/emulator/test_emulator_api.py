"""Auth, single-message routes, publish/enqueue, queues and the admin API, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from qstash_emulator import QStashEmulator
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(60)


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v2/messages"),
        ("GET", "/v2/messages/m0"),
        ("DELETE", "/v2/messages/m0"),
        ("GET", "/v2/queues"),
        ("POST", "/v2/publish/https://example.com/x"),
        ("POST", "/v2/enqueue/q/https://example.com/x"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong-token", "no-scheme", "basic"],
)
def test_v2_routes_need_the_token(emu: QStashEmulator, method: str, path: str, headers: dict[str, str]) -> None:
    emu.add_messages([{"messageId": "m0", "url": "https://example.com/x"}])
    response = requests.request(method, emu.base_url + path, headers=headers, timeout=10)
    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)
    assert emu.held_ids() == {"m0"}
    assert emu.counts() == {"held": 1, "cancelled": 0}


def test_wrong_query_token_is_refused(emu: QStashEmulator) -> None:
    response = requests.delete(emu.base_url + "/v2/messages", params={"qstash_token": "nope"}, timeout=10)
    assert response.status_code == 401


def test_query_token_works_and_is_not_a_filter(emu: QStashEmulator) -> None:
    emu.add_messages([{"url": "https://example.com/a", "label": "x"}, {"url": "https://example.com/b"}])
    response = requests.delete(emu.base_url + "/v2/messages", params={"qstash_token": TOKEN, "label": "x"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"cancelled": 1}


def test_bearer_scheme_is_case_insensitive(emu: QStashEmulator) -> None:
    response = requests.get(emu.base_url + "/v2/queues", headers={"Authorization": f"bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200


def test_admin_routes_need_no_token(emu: QStashEmulator) -> None:
    assert requests.get(emu.base_url + "/_emulator/stats", timeout=10).json() == {"held": 0, "cancelled": 0}
    assert requests.get(emu.base_url + "/_emulator/health", timeout=10).json() == {"status": "ok"}


def test_unknown_v2_route_answers_json_404(api: Api) -> None:
    response = api.request("GET", "/v2/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


# -- single message -----------------------------------------------------------------------------


def test_get_message_returns_the_message_fields(emu: QStashEmulator, api: Api) -> None:
    emu.add_messages(
        [
            {
                "messageId": "msg_1",
                "url": "https://example.com:8443/hook",
                "labels": ["a", "b"],
                "queueName": "q1",
                "topicName": "g1",
                "flowControlKey": "fk",
                "scheduleId": "scd_1",
                "callerIp": "10.1.1.1",
                "createdAt": 1_700_000_000_123,
            }
        ]
    )
    response = api.request("GET", "/v2/messages/msg_1")
    assert response.status_code == 200
    assert response.json() == {
        "messageId": "msg_1",
        "url": "https://example.com:8443/hook",
        "method": "POST",
        "createdAt": 1_700_000_000_123,
        "maxRetries": 3,
        "notBefore": 1_700_000_000_123,
        "topicName": "g1",
        "queueName": "q1",
        "flowControlKey": "fk",
        "scheduleId": "scd_1",
        "callerIP": "10.1.1.1",
        "labels": ["a", "b"],
        "label": "a",
    }


def test_get_unknown_message_is_404(api: Api) -> None:
    response = api.request("GET", "/v2/messages/msg_nope")
    assert response.status_code == 404
    assert "msg_nope" in response.json()["error"]


def test_delete_message_cancels_it_then_404(emu: QStashEmulator, api: Api) -> None:
    emu.add_messages([{"messageId": "m1", "url": "https://example.com/a"}, {"url": "https://example.com/b"}])
    response = api.request("DELETE", "/v2/messages/m1")
    assert (response.status_code, response.json()) == (202, {"cancelled": 1})
    assert emu.counts() == {"held": 1, "cancelled": 1}
    assert [m["messageId"] for m in emu.messages("cancelled")] == ["m1"]
    assert emu.messages("cancelled")[0]["cancelledAt"] is not None
    assert api.request("GET", "/v2/messages/m1").status_code == 404
    again = api.request("DELETE", "/v2/messages/m1")
    assert again.status_code == 404
    assert "error" in again.json()


def test_empty_message_id_is_not_redirected_to_bulk_cancel(emu: QStashEmulator, api: Api) -> None:
    """``DELETE /v2/messages/`` must not become an unfiltered ``DELETE /v2/messages``."""
    emu.seed(5)
    response = api.request("DELETE", "/v2/messages/", allow_redirects=False)
    assert response.status_code == 404
    assert emu.counts() == {"held": 5, "cancelled": 0}


def test_delete_unknown_message_is_404(api: Api) -> None:
    assert api.request("DELETE", "/v2/messages/unknown").status_code == 404


# -- publish / enqueue --------------------------------------------------------------------------


def test_publish_to_url_with_labels_and_flow_control_key(emu: QStashEmulator, api: Api) -> None:
    response = api.request(
        "POST",
        "/v2/publish/https://example.com/api/hook",
        headers={"Upstash-Label": "billing, urgent", "Upstash-Flow-Control-Key": "tenant-7"},
        data=b'{"x": 1}',
    )
    assert response.status_code == 200
    message_id = response.json()["messageId"]
    assert message_id.startswith("msg_")
    message = api.request("GET", f"/v2/messages/{message_id}").json()
    assert message["url"] == "https://example.com/api/hook"
    assert message["labels"] == ["billing", "urgent"]
    assert message["flowControlKey"] == "tenant-7"
    assert message["callerIP"] == "127.0.0.1"
    assert message["body"] == '{"x": 1}'
    assert "queueName" not in message
    # and it is found by the filters
    assert api.cancelled({"label": "urgent", "flowControlKey": "tenant-7", "host": "example.com"}) == 1


def test_publish_percent_encoded_destination(api: Api) -> None:
    response = api.request("POST", "/v2/publish/https%3A%2F%2Fexample.com%2Fp")
    assert response.status_code == 200
    message = api.request("GET", f"/v2/messages/{response.json()['messageId']}").json()
    assert message["url"] == "https://example.com/p"


def test_publish_records_forwarded_caller_ip(api: Api) -> None:
    response = api.request(
        "POST", "/v2/publish/https://example.com/x", headers={"X-Forwarded-For": "198.51.100.7, 10.0.0.1"}
    )
    message_id = response.json()["messageId"]
    assert api.request("GET", f"/v2/messages/{message_id}").json()["callerIP"] == "198.51.100.7"
    assert api.cancelled({"callerIp": "198.51.100.7"}) == 1


def test_publish_to_url_group(emu: QStashEmulator, api: Api) -> None:
    endpoints = {"endpoints": [{"url": "https://a.example/x"}, {"url": "https://b.example/y", "name": "b"}]}
    assert api.request("POST", "/v2/topics/my-group/endpoints", json=endpoints).status_code == 200
    response = api.request("POST", "/v2/publish/my-group", headers={"Upstash-Label": "g"})
    assert response.status_code == 200
    body = response.json()
    assert [entry["url"] for entry in body] == ["https://a.example/x", "https://b.example/y"]
    for entry in body:
        message = api.request("GET", f"/v2/messages/{entry['messageId']}").json()
        assert (message["topicName"], message["url"]) == ("my-group", entry["url"])
    assert api.cancelled({"topicName": "my-group"}) == 2


@pytest.mark.parametrize("destination", ["ftp://example.com/x", "not a url", "https://"])
def test_publish_refuses_bad_destinations(emu: QStashEmulator, api: Api, destination: str) -> None:
    response = api.request("POST", "/v2/publish/" + destination)
    assert response.status_code == 400
    assert "error" in response.json()
    assert emu.counts()["held"] == 0


def test_enqueue_with_labels_and_queue(emu: QStashEmulator, api: Api) -> None:
    for label in ("a", "b", "a,b"):
        response = api.request(
            "POST",
            "/v2/enqueue/jobs/https://worker.example.com/run",
            headers={"Upstash-Label": label, "Upstash-Flow-Control-Key": "fk"},
        )
        assert response.status_code == 200, response.text
    queues = api.request("GET", "/v2/queues").json()
    assert [(q["name"], q["lag"]) for q in queues] == [("jobs", 3)]
    assert api.cancelled({"queueName": "jobs", "label": "b"}) == 2
    assert [(q["name"], q["lag"]) for q in api.request("GET", "/v2/queues").json()] == [("jobs", 1)]


def test_enqueue_refuses_bad_queue_name(api: Api) -> None:
    assert api.request("POST", "/v2/enqueue/bad%20name/https://example.com/x").status_code == 400


def test_queues_lists_every_queue_with_lag(emu: QStashEmulator, api: Api) -> None:
    emu.add_messages(
        [
            {"url": "https://e.com/1", "queueName": "b"},
            {"url": "https://e.com/2", "queueName": "a"},
            {"url": "https://e.com/3", "queueName": "a"},
            {"url": "https://e.com/4"},
        ]
    )
    response = api.request("GET", "/v2/queues")
    assert response.status_code == 200
    queues = response.json()
    assert [(q["name"], q["lag"], q["parallelism"], q["paused"]) for q in queues] == [
        ("a", 2, 1, False),
        ("b", 1, 1, False),
    ]
    assert api.cancelled({"queueName": "b"}) == 1
    assert [(q["name"], q["lag"]) for q in api.request("GET", "/v2/queues").json()] == [("a", 2), ("b", 0)]


def test_queues_on_an_empty_store(api: Api) -> None:
    assert api.request("GET", "/v2/queues").json() == []


# -- admin API ----------------------------------------------------------------------------------


def test_admin_seed_is_reproducible(emu: QStashEmulator) -> None:
    body = {"count": 300, "seed": 42, "now": 1_800_000_000_000}
    assert requests.post(emu.base_url + "/_emulator/seed", json=body, timeout=30).json() == {"seeded": 300}
    first = [{k: v for k, v in m.items() if k != "messageId"} for m in emu.messages("all")]
    emu.reset()
    emu.seed(300, seed=42, now=1_800_000_000_000)
    second = [{k: v for k, v in m.items() if k != "messageId"} for m in emu.messages("all")]
    assert first == second
    # seeding the same seed again into a non-empty store must not collide on ids
    emu.seed(300, seed=42, now=1_800_000_000_000)
    assert emu.counts() == {"held": 600, "cancelled": 0}


def test_seed_distribution_has_the_documented_variety(emu: QStashEmulator) -> None:
    now = 1_800_000_000_000
    emu.seed(2000, seed=3, now=now)
    messages = emu.messages()
    label_counts = {len(m.get("labels", [])) for m in messages}
    assert label_counts == {0, 1, 2}
    assert {m.get("queueName") for m in messages} == {None, *(f"queue-{i}" for i in range(5))}
    assert {m.get("topicName") for m in messages} >= {None, "group-0", "group-1", "group-2"}
    assert len({m["host"] for m in messages}) >= 3
    assert len({m["path"] for m in messages}) >= 4
    assert any("flowControlKey" in m for m in messages)
    assert any("scheduleId" in m for m in messages)
    assert len({m["callerIP"] for m in messages}) > 1
    created = [m["createdAt"] for m in messages]
    assert now - 30 * 86_400_000 <= min(created) and max(created) <= now
    assert max(created) - min(created) > 25 * 86_400_000


def test_admin_add_and_list_messages(emu: QStashEmulator) -> None:
    response = requests.post(
        emu.base_url + "/_emulator/messages",
        json=[{"url": "https://e.com/a", "label": "x"}, {"url": "https://e.com/b", "messageId": "given"}],
        timeout=10,
    )
    assert response.status_code == 200
    ids = response.json()["messageIds"]
    assert ids[1] == "given" and ids[0].startswith("msg_")
    listed = requests.get(emu.base_url + "/_emulator/messages", params={"state": "all"}, timeout=10).json()
    assert [m["messageId"] for m in listed] == ids
    assert all(m["state"] == "held" for m in listed)
    bad = requests.post(emu.base_url + "/_emulator/messages", json=[{"url": "https://e.com/c", "lable": "x"}])
    assert bad.status_code == 400 and "lable" in bad.json()["error"]
    dup = requests.post(emu.base_url + "/_emulator/messages", json=[{"url": "https://e.com/c", "messageId": "given"}])
    assert dup.status_code == 400
    assert requests.get(emu.base_url + "/_emulator/messages", params={"state": "nope"}).status_code == 400


def test_add_messages_validation(emu: QStashEmulator) -> None:
    with pytest.raises(ValueError, match="url"):
        emu.add_messages([{"label": "x"}])
    with pytest.raises(ValueError, match="http"):
        emu.add_messages([{"url": "example.com/x"}])
    with pytest.raises(ValueError, match="createdAt"):
        emu.add_messages([{"url": "https://e.com", "createdAt": "yesterday"}])
    assert emu.counts() == {"held": 0, "cancelled": 0}


@pytest.mark.parametrize("created_at", [10**30, 1e30, -1, 2**63, 1.5, True])
def test_admin_created_at_out_of_range_answers_400_not_500(emu: QStashEmulator, created_at: object) -> None:
    response = requests.post(
        emu.base_url + "/_emulator/messages",
        data=f'[{{"url": "https://e.com/x", "createdAt": {str(created_at).lower()}}}]',
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert "createdAt" in response.json()["error"]
    assert emu.counts() == {"held": 0, "cancelled": 0}


@pytest.mark.parametrize("body", [{"count": 1, "now": 10**30}, {"count": 1, "now": 1e30}, {"count": 10**30}])
def test_admin_seed_out_of_range_answers_400(emu: QStashEmulator, body: dict[str, object]) -> None:
    response = requests.post(emu.base_url + "/_emulator/seed", json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert emu.counts() == {"held": 0, "cancelled": 0}


@pytest.mark.parametrize("limit", ["5_0", "-1", "abc", "1" * 30])
def test_admin_list_limit_must_be_plain_digits(emu: QStashEmulator, limit: str) -> None:
    response = requests.get(emu.base_url + "/_emulator/messages", params={"limit": limit}, timeout=10)
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


def test_request_log_records_v2_requests_only(emu: QStashEmulator, api: Api) -> None:
    api.cancel([("label", "a"), ("label", "b,c"), ("count", "5")])
    api.request("GET", "/v2/queues")
    requests.get(emu.base_url + "/_emulator/stats", timeout=10)
    requests.get(emu.base_url + "/v2/queues", timeout=10)  # unauthorised, still logged
    log = emu.request_log()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("DELETE", "/v2/messages", 200),
        ("GET", "/v2/queues", 200),
        ("GET", "/v2/queues", 401),
    ]
    assert log[0]["query"] == [("label", "a"), ("label", "b,c"), ("count", "5")]
    assert all(isinstance(e["time"], float) and e["fault"] is None for e in log)
    assert all(isinstance(e["durationMs"], float) for e in log)
    # store work was timed: CPU time within wall time, allowing 1 ms for reading the two clocks apart
    assert log[0]["storeMs"] > 0 and 0 <= log[0]["storeCpuMs"] <= log[0]["storeMs"] + 1.0
    assert log[2]["storeMs"] is None  # refused before touching the store
    over_http = requests.get(emu.base_url + "/_emulator/requests", timeout=10).json()
    assert over_http[0]["query"] == [["label", "a"], ["label", "b,c"], ["count", "5"]]
    assert requests.delete(emu.base_url + "/_emulator/requests", timeout=10).status_code == 200
    assert emu.request_log() == []
    api.request("GET", "/v2/queues")
    emu.clear_request_log()
    assert emu.request_log() == []


def test_admin_faults_roundtrip(emu: QStashEmulator) -> None:
    assert requests.get(emu.base_url + "/_emulator/faults", timeout=10).json() is None
    config = {"rate_5xx": 0.5, "seed": 9, "latency_ms": 1}
    response = requests.put(emu.base_url + "/_emulator/faults", json=config, timeout=10)
    assert response.status_code == 200
    assert response.json()["rate_5xx"] == 0.5
    current = emu.get_faults()
    assert current is not None and current.seed == 9 and current.latency_ms == 1
    bad = requests.put(emu.base_url + "/_emulator/faults", json={"rate_5xx": 2}, timeout=10)
    assert bad.status_code == 400
    unknown = requests.put(emu.base_url + "/_emulator/faults", json={"rate_500": 0.1}, timeout=10)
    assert unknown.status_code == 400 and "rate_500" in unknown.json()["error"]
    off = requests.put(emu.base_url + "/_emulator/faults", data="null", timeout=10)
    assert off.json() is None and emu.get_faults() is None


def test_admin_reset(emu: QStashEmulator, api: Api) -> None:
    emu.seed(50)
    api.request("GET", "/v2/queues")
    assert requests.post(emu.base_url + "/_emulator/reset", timeout=10).json() == {"reset": True}
    assert emu.counts() == {"held": 0, "cancelled": 0}
    assert emu.request_log() == []
    assert api.request("GET", "/v2/queues").json() == []


def test_admin_stats_and_held_ids(emu: QStashEmulator, api: Api) -> None:
    ids = emu.add_messages([{"url": f"https://e.com/{i}"} for i in range(5)])
    api.request("DELETE", f"/v2/messages/{ids[0]}")
    assert requests.get(emu.base_url + "/_emulator/stats", timeout=10).json() == {"held": 4, "cancelled": 1}
    assert emu.held_ids() == set(ids[1:])
    assert len(emu.messages("all")) == 5 and len(emu.messages("all", limit=2)) == 2
