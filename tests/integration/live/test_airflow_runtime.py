"""The live suite's REST client on its own (no Airflow): how it creates a backfill on a busy SQLite."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.live.airflow_runtime import AirflowAPI, AirflowError

LOCKED = {
    "detail": "Database is locked. Backfill creation is not supported on SQLite under concurrent access. "
    "Please use PostgreSQL or MySQL."
}
BODY = {"dag_id": "qstash_backfill_cleanup", "from_date": "2026-11-25T00:00:00Z", "to_date": "2026-11-27T00:00:00Z"}
CREATED = {"id": 1, "dag_id": "qstash_backfill_cleanup"}


def _api(answers: list[httpx.Response], leftover: list[dict] | None = None) -> tuple[AirflowAPI, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "jwt"})
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"backfills": leftover or [], "total_entries": len(leftover or [])})
        return answers.pop(0)

    api = AirflowAPI("http://airflow.test", "admin", "pw", transport=httpx.MockTransport(handle))
    return api, seen


def test_a_locked_creation_is_retried_after_checking_nothing_was_left():
    api, seen = _api(
        [httpx.Response(503, json=LOCKED), httpx.Response(503, json=LOCKED), httpx.Response(200, json=CREATED)]
    )

    assert api.create_backfill(BODY, pause=0) == CREATED

    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/api/v2/backfills"),
        ("GET", "/api/v2/backfills"),
        ("POST", "/api/v2/backfills"),
        ("GET", "/api/v2/backfills"),
        ("POST", "/api/v2/backfills"),
    ]
    assert all(json.loads(r.content) == BODY for r in seen if r.method == "POST")
    assert {r.url.params["dag_id"] for r in seen if r.method == "GET"} == {BODY["dag_id"]}


def test_a_backfill_left_by_a_locked_attempt_stops_the_retries():
    api, seen = _api([httpx.Response(503, json=LOCKED), httpx.Response(200, json=CREATED)], leftover=[CREATED])

    with pytest.raises(AirflowError, match="left backfill"):
        api.create_backfill(BODY, pause=0)
    assert [r.method for r in seen] == ["POST", "GET"]


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(409, json={"detail": "already running"}), httpx.Response(503, json={"detail": "maintenance"})],
)
def test_other_failures_are_not_retried(answer):
    api, seen = _api([answer, httpx.Response(200, json=CREATED)])

    with pytest.raises(AirflowError, match=str(answer.status_code)):
        api.create_backfill(BODY, pause=0)
    assert len(seen) == 1


def test_a_lock_that_never_clears_fails_after_the_last_attempt():
    api, seen = _api([httpx.Response(503, json=LOCKED) for _ in range(3)])

    with pytest.raises(AirflowError, match=r"503 .*Database is locked"):
        api.create_backfill(BODY, attempts=3, pause=0)
    assert [r.method for r in seen].count("POST") == 3
