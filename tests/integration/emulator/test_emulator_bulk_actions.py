"""``--bulk-cancel actions``: filter cancels as background bulk actions, the listing, 412/429, faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from qstash_emulator import FaultConfig, QStashEmulator
from qstash_emulator.actions import RETENTION_MS, ActionStore, filter_key
from qstash_emulator.bulk_cancel import SAME_FILTER_IN_PROGRESS, STILL_IN_PROGRESS
from qstash_emulator.faults import FaultInjector
from qstash_emulator.query import parse_bulk_cancel_query
from qstash_emulator.store import MessageStore
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(60)

RATE_LIMIT_HEADERS = ("Burst-RateLimit-Limit", "Burst-RateLimit-Reset", "RateLimit-Limit", "RateLimit-Reset")


@pytest.fixture(scope="module")
def fast_server() -> Iterator[QStashEmulator]:
    """Actions finish almost at once; the synchronous wait is short."""
    with QStashEmulator(token=TOKEN, bulk_cancel="actions", action_rate=1_000_000, sync_wait=5) as emu:
        yield emu


@pytest.fixture(scope="module")
def slow_server() -> Iterator[QStashEmulator]:
    """200 messages/s and a 0.1 s wait: an action over a few hundred messages is visibly in progress."""
    with QStashEmulator(token=TOKEN, bulk_cancel="actions", action_rate=200, sync_wait=0.1) as emu:
        yield emu


def _fresh(emu: QStashEmulator) -> Iterator[QStashEmulator]:
    emu.reset()
    emu.set_faults(None)
    yield emu
    emu.set_faults(None)


@pytest.fixture
def fast(fast_server: QStashEmulator) -> Iterator[QStashEmulator]:
    yield from _fresh(fast_server)


@pytest.fixture
def slow(slow_server: QStashEmulator) -> Iterator[QStashEmulator]:
    yield from _fresh(slow_server)


@pytest.fixture
def fast_api(fast: QStashEmulator) -> Iterator[Api]:
    client = Api(fast)
    yield client
    client.session.close()


@pytest.fixture
def slow_api(slow: QStashEmulator) -> Iterator[Api]:
    client = Api(slow)
    yield client
    client.session.close()


def _add(emu: QStashEmulator, n: int, label: str, start: int = 1_700_000_000_000) -> list[str]:
    return emu.add_messages([{"url": "https://e.com/x", "label": label, "createdAt": start + i} for i in range(n)])


def _start(api: Api, params: Any) -> str:
    query = [*(params.items() if isinstance(params, dict) else params), ("async", "true")]
    response = api.cancel(query)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"actionId"}
    action_id: str = body["actionId"]
    return action_id


def _action(api: Api, action_id: str) -> dict[str, Any]:
    response = api.request("GET", f"/v2/bulkActions/{action_id}")
    assert response.status_code == 200, response.text
    action: dict[str, Any] = response.json()
    return action


# -- starting and finishing -------------------------------------------------------------------


def test_async_filter_cancel_answers_202_and_the_action_cancels_its_snapshot(
    fast: QStashEmulator, fast_api: Api
) -> None:
    doomed = _add(fast, 30, "a")
    kept = _add(fast, 5, "b")
    action_id = _start(fast_api, {"label": "a"})
    fast.wait_actions_idle(timeout=20)
    action = _action(fast_api, action_id)
    assert action["actionId"] == action_id and action["kind"] == "cancel" and action["state"] == "FINISHED"
    assert action["total"] == action["processed"] == 30
    assert action["filter"] == {"label": ["a"]}
    assert action["completedAt"] >= action["createdAt"]
    assert fast.held_ids() == set(kept)
    assert {m["messageId"] for m in fast.messages("cancelled")} == set(doomed)


def test_sync_filter_cancel_waits_and_answers_the_cancelled_count(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 40, "a")
    kept = _add(fast, 3, "b")
    assert fast_api.cancelled({"label": "a"}) == 40
    assert fast.held_ids() == set(kept)
    (action,) = fast.bulk_actions()
    assert action["state"] == "FINISHED" and action["cancelled"] == 40


def test_wait_running_out_answers_429_without_rate_limit_headers_and_the_action_goes_on(
    slow: QStashEmulator, slow_api: Api
) -> None:
    _add(slow, 150, "a")
    response = slow_api.cancel({"label": "a"})
    assert response.status_code == 429
    assert response.json() == {"error": STILL_IN_PROGRESS}
    assert not any(name in response.headers for name in RATE_LIMIT_HEADERS)
    (action,) = slow.bulk_actions()
    assert action["state"] == "IN_PROGRESS"
    finished = slow.wait_actions_idle(timeout=30)
    assert finished[0]["state"] == "FINISHED" and finished[0]["processed"] == 150
    assert slow.held_ids() == set()


@pytest.mark.parametrize("count", ["1", "0", "501", "abc", "5_0"])
def test_count_is_ignored_by_filter_cancels(fast: QStashEmulator, fast_api: Api, count: str) -> None:
    _add(fast, 12, "a")
    assert fast_api.cancelled({"label": "a", "count": count}) == 12


def test_message_ids_cancel_is_synchronous_exact_and_starts_no_action(fast: QStashEmulator, fast_api: Api) -> None:
    ids = _add(fast, 5, "a")
    response = fast_api.cancel({"messageIds": ",".join(ids[:3]), "count": "1", "async": "true", "label": "zzz"})
    assert response.status_code == 200 and response.json() == {"cancelled": 3}
    assert fast.held_ids() == set(ids[3:])
    assert fast.bulk_actions() == []


def test_no_filter_is_one_action_over_every_message(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 7, "a")
    _add(fast, 4, "b")
    action_id = _start(fast_api, [])
    fast.wait_actions_idle(timeout=20)
    action = _action(fast_api, action_id)
    assert action["filter"] == {} and action["total"] == 11
    assert fast.counts() == {"held": 0, "cancelled": 11}


def test_filter_keeps_the_request_names_split_values_and_date_text(fast: QStashEmulator, fast_api: Api) -> None:
    query = [
        ("label", "b,a"),
        ("label", "c"),
        ("callerIP", "10.0.0.1"),
        ("queueName", "q1"),
        ("fromDate", "0005"),
        ("toDate", "99"),
        ("flowControlKey", ""),
    ]
    action_id = _start(fast_api, query)
    assert _action(fast_api, action_id)["filter"] == {
        "label": ["b", "a", "c"],
        "callerIp": ["10.0.0.1"],
        "queueName": ["q1"],
        "fromDate": ["5"],
        "toDate": ["99"],
    }


def test_nothing_matching_finishes_at_once(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 3, "a")
    action_id = _start(fast_api, {"label": "nothing"})
    action = _action(fast_api, action_id)
    assert action["state"] == "FINISHED" and action["total"] == 0 and action["processed"] == 0
    assert action["completedAt"] == action["createdAt"]
    assert fast_api.cancelled({"label": "nothing"}) == 0
    assert fast.counts()["held"] == 3


@pytest.mark.parametrize("value", ["maybe", "1", ""])
def test_async_must_be_true_or_false(fast: QStashEmulator, fast_api: Api, value: str) -> None:
    _add(fast, 2, "a")
    response = fast_api.cancel({"label": "a", "async": value})
    assert response.status_code == 400 and "async" in response.json()["error"]
    assert fast.bulk_actions() == [] and fast.counts()["held"] == 2


def test_async_false_is_the_synchronous_wait(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 2, "a")
    response = fast_api.cancel({"label": "a", "async": "FALSE"})
    assert response.status_code == 200 and response.json() == {"cancelled": 2}


def test_invalid_dates_still_answer_400(fast: QStashEmulator, fast_api: Api) -> None:
    response = fast_api.cancel({"fromDate": "1" * 30, "async": "true"})
    assert response.status_code == 400 and "fromDate" in response.json()["error"]
    assert fast.bulk_actions() == []


# -- snapshot semantics -------------------------------------------------------------------------


def test_messages_created_after_acceptance_are_not_touched(slow: QStashEmulator, slow_api: Api) -> None:
    _add(slow, 100, "a")
    action_id = _start(slow_api, {"label": "a"})
    assert _action(slow_api, action_id)["state"] == "IN_PROGRESS"
    (late,) = slow.add_messages([{"url": "https://e.com/late", "label": "a"}])
    slow.wait_actions_idle(timeout=30)
    action = _action(slow_api, action_id)
    assert action["total"] == action["processed"] == 100
    assert slow.held_ids() == {late}


def test_snapshot_message_cancelled_meanwhile_is_processed_not_cancelled_twice(
    slow: QStashEmulator, slow_api: Api
) -> None:
    ids = _add(slow, 100, "a")
    action_id = _start(slow_api, {"label": "a"})
    assert slow_api.request("DELETE", f"/v2/messages/{ids[-1]}").status_code == 202  # the newest goes last
    slow.wait_actions_idle(timeout=30)
    (action,) = slow.bulk_actions()
    assert action["actionId"] == action_id
    assert action["processed"] == action["total"] == 100
    assert action["cancelled"] == 99
    assert slow.counts() == {"held": 0, "cancelled": 100}


# -- 412 -----------------------------------------------------------------------------------------


def test_same_filter_in_progress_answers_412_and_starts_nothing(slow: QStashEmulator, slow_api: Api) -> None:
    _add(slow, 60, "a")
    _add(slow, 60, "b")
    first = _start(slow_api, [("label", "a,b"), ("fromDate", "0")])
    for query in ([("label", "b"), ("label", "a"), ("fromDate", "0")], [("fromDate", "0"), ("label", "b,a")]):
        for extra in ([("async", "true")], []):
            response = slow_api.cancel([*query, *extra])
            assert response.status_code == 412, response.text
            assert response.json() == {"error": SAME_FILTER_IN_PROGRESS}
    assert [a["actionId"] for a in slow.bulk_actions()] == [first]
    other = _start(slow_api, [("label", "a")])  # a different filter is another action
    assert [a["actionId"] for a in slow.bulk_actions()] == [first, other]
    slow.wait_actions_idle(timeout=30)
    again = _start(slow_api, [("label", "a,b"), ("fromDate", "0")])  # not in progress any more
    assert again not in (first, other)


def test_filter_key_ignores_value_order_only() -> None:
    assert filter_key({"label": ["a", "b"], "url": ["u"]}) == filter_key({"url": ["u"], "label": ["b", "a"]})
    assert filter_key({"label": ["a"]}) != filter_key({"label": ["a", "b"]})
    assert filter_key({"label": ["a"]}) != filter_key({"queueName": ["a"]})
    assert filter_key({}) == filter_key({"label": []})


# -- listing ---------------------------------------------------------------------------------------


def test_listing_pages_in_creation_order_until_no_cursor(fast: QStashEmulator, fast_api: Api) -> None:
    ids = [_start(fast_api, {"label": f"l{i}"}) for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while pages < 10:
        params = {"count": "2"} if cursor is None else {"count": "2", "cursor": cursor}
        response = fast_api.request("GET", "/v2/bulkActions", params=params)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        seen += [a["actionId"] for a in body["bulkActions"]]
        if "cursor" not in body:
            break
        cursor = body["cursor"]
    assert seen == ids and pages == 3
    everything = fast_api.request("GET", "/v2/bulkActions").json()
    assert "cursor" not in everything and [a["actionId"] for a in everything["bulkActions"]] == ids


def test_state_filter_applies_per_page_so_pages_may_be_empty(slow: QStashEmulator, slow_api: Api) -> None:
    _add(slow, 400, "busy")
    done = [_start(slow_api, {"label": f"none-{i}"}) for i in range(3)]  # nothing matches: FINISHED
    running = _start(slow_api, {"label": "busy"})
    pages: list[tuple[list[str], bool]] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"count": "1", "state": "IN_PROGRESS", **({} if cursor is None else {"cursor": cursor})}
        body = slow_api.request("GET", "/v2/bulkActions", params=params).json()
        pages.append(([a["actionId"] for a in body["bulkActions"]], "cursor" in body))
        cursor = body.get("cursor")
        if cursor is None:
            break
    assert pages == [([], True), ([], True), ([], True), ([running], False)]
    finished = slow_api.request("GET", "/v2/bulkActions", params={"state": "FINISHED"}).json()
    assert [a["actionId"] for a in finished["bulkActions"]] == done


@pytest.mark.parametrize(
    "params",
    [{"count": "0"}, {"count": "1001"}, {"count": "abc"}, {"count": "5_0"}, {"state": "DONE"}, {"cursor": "x"}],
)
def test_listing_refuses_bad_parameters(fast_api: Api, params: dict[str, str]) -> None:
    response = fast_api.request("GET", "/v2/bulkActions", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["error"]


def test_listing_accepts_count_bounds(fast_api: Api) -> None:
    for count in ("1", "1000"):
        assert fast_api.request("GET", "/v2/bulkActions", params={"count": count}).json() == {"bulkActions": []}


def test_unknown_action_is_404(fast_api: Api) -> None:
    response = fast_api.request("GET", "/v2/bulkActions/act_nope")
    assert response.status_code == 404 and "act_nope" in response.json()["error"]


def test_bulk_action_routes_need_the_token(fast: QStashEmulator) -> None:
    for path in ("/v2/bulkActions", "/v2/bulkActions/act_x"):
        assert requests.get(fast.base_url + path, timeout=10).status_code == 401


def test_actions_older_than_seven_days_are_dropped(fast: QStashEmulator, fast_api: Api) -> None:
    action_id = _start(fast_api, {"label": "x"})
    actions = fast.state.actions
    created = _action(fast_api, action_id)["createdAt"]
    original = actions.clock
    try:
        actions.clock = lambda: created + RETENTION_MS
        assert _action(fast_api, action_id)["actionId"] == action_id  # exactly 7 days: still kept
        actions.clock = lambda: created + RETENTION_MS + 1
        assert fast_api.request("GET", f"/v2/bulkActions/{action_id}").status_code == 404
        assert fast_api.request("GET", "/v2/bulkActions").json() == {"bulkActions": []}
        assert fast.bulk_actions() == []
    finally:
        actions.clock = original


def test_wait_actions_idle_is_bounded(slow: QStashEmulator, slow_api: Api) -> None:
    _add(slow, 300, "a")
    _start(slow_api, {"label": "a"})
    with pytest.raises(TimeoutError, match="still in progress"):
        slow.wait_actions_idle(timeout=0.05)


# -- legacy generation ----------------------------------------------------------------------------


def test_legacy_mode_ignores_async_honours_count_and_has_no_bulk_actions(emu: QStashEmulator, api: Api) -> None:
    _add(emu, 5, "a")
    response = api.cancel({"label": "a", "count": "2", "async": "true"})
    assert response.status_code == 200 and response.json() == {"cancelled": 2}
    assert api.request("GET", "/v2/bulkActions").status_code == 404
    assert api.request("GET", "/v2/bulkActions/act_x").status_code == 404
    assert emu.bulk_actions() == []


# -- persistence -----------------------------------------------------------------------------------


def test_actions_persist_and_resume_after_a_restart_with_db(tmp_path: Path) -> None:
    db = str(tmp_path / "actions.sqlite")
    with QStashEmulator(token=TOKEN, db=db, subprocess=True, action_rate=20, sync_wait=0) as first:
        ids = _add(first, 200, "a")
        client = Api(first)
        done = _start(client, {"label": "none"})
        running = _start(client, {"label": "a"})
        assert [a["state"] for a in first.bulk_actions()] == ["FINISHED", "IN_PROGRESS"]
    with QStashEmulator(token=TOKEN, db=db, action_rate=1_000_000) as second:
        client = Api(second)
        listed = client.request("GET", "/v2/bulkActions").json()["bulkActions"]
        assert [a["actionId"] for a in listed] == [done, running]
        second.wait_actions_idle(timeout=20)
        action = _action(client, running)
        assert action["state"] == "FINISHED" and action["processed"] == action["total"] == 200
        assert second.held_ids() == set() and len(ids) == 200


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/bulkActions", "/v2/bulkActions/{id}"])
def test_polls_get_5xx_429_with_headers_and_drops(fast: QStashEmulator, fast_api: Api, path: str) -> None:
    action_id = _start(fast_api, {"label": "x"})
    url = path.format(id=action_id)
    fast.set_faults(FaultConfig(rate_5xx=1.0, statuses_5xx=(503,)))
    assert fast_api.request("GET", url).status_code == 503
    fast.set_faults(FaultConfig(rate_429=1.0))
    response = fast_api.request("GET", url)
    assert response.status_code == 429 and response.headers["Burst-RateLimit-Remaining"] == "0"
    fast.set_faults(FaultConfig(rate_drop=1.0))
    with pytest.raises(requests.ConnectionError):
        fast_api.request("GET", url)
    fast.set_faults(FaultConfig(latency_ms=50))
    assert fast_api.request("GET", url).status_code == 200
    assert fast.request_log()[-1]["durationMs"] >= 50
    assert [e["fault"] for e in fast.request_log()[-4:]] == ["5xx", "429", "drop", None]


def test_start_lost_creates_the_action_but_answers_429_without_headers(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 10, "a")
    fast.set_faults(FaultConfig(rate_start_lost=1.0))
    response = fast_api.cancel({"label": "a", "async": "true"})
    assert response.status_code == 429 and response.json() == {"error": STILL_IN_PROGRESS}
    assert not any(name in response.headers for name in RATE_LIMIT_HEADERS)
    (action,) = fast.wait_actions_idle(timeout=20)
    assert action["filter"] == {"label": ["a"]} and action["cancelled"] == 10
    assert fast.request_log()[-1]["fault"] == "start_lost"


def test_spurious_412_starts_nothing(fast: QStashEmulator, fast_api: Api) -> None:
    _add(fast, 10, "a")
    fast.set_faults(FaultConfig(rate_spurious_412=1.0))
    for extra in ({"async": "true"}, {}):
        response = fast_api.cancel({"label": "a", **extra})
        assert response.status_code == 412 and response.json() == {"error": SAME_FILTER_IN_PROGRESS}
    assert fast.bulk_actions() == [] and fast.counts()["held"] == 10
    assert [e["fault"] for e in fast.request_log()] == ["412", "412"]


def test_action_partial_finishes_leaving_part_of_the_snapshot(fast: QStashEmulator, fast_api: Api) -> None:
    kept_by_fault = set()
    for seed in range(5):
        fast.reset()
        ids = _add(fast, 50, "a")
        fast.set_faults(FaultConfig(rate_action_partial=1.0, seed=seed))
        assert fast_api.cancel({"label": "a"}).status_code == 200
        (action,) = fast.wait_actions_idle(timeout=20)
        assert action["state"] == "FINISHED" and action["processed"] == action["total"] == 50
        left = fast.held_ids()
        assert len(left) > 0 and action["cancelled"] == 50 - len(left)
        assert left == set(ids[50 - len(left) :])  # the oldest went first
        assert fast.request_log()[-1]["fault"] == "action_partial"
        kept_by_fault.add(len(left))
    assert len(kept_by_fault) > 1


def test_action_faults_leave_message_id_cancels_alone(fast: QStashEmulator, fast_api: Api) -> None:
    ids = _add(fast, 3, "a")
    fast.set_faults(FaultConfig(rate_spurious_412=0.5, rate_start_lost=0.5, rate_action_partial=1.0))
    assert fast_api.cancel({"messageIds": ",".join(ids)}).json() == {"cancelled": 3}
    assert fast.request_log()[-1]["fault"] is None


def test_action_faults_are_seeded_and_leave_the_other_fault_sequence_alone() -> None:
    base = FaultConfig(rate_429=0.3, rate_5xx=0.2, rate_partial=0.3, seed=42)
    with_actions = FaultConfig(
        rate_429=0.3, rate_5xx=0.2, rate_partial=0.3, rate_spurious_412=0.3, rate_start_lost=0.3,
        rate_action_partial=0.5, seed=42,
    )  # fmt: skip
    plain, extended, again = FaultInjector(base), FaultInjector(with_actions), FaultInjector(with_actions)
    first = [extended.decide("DELETE", "/v2/messages") for _ in range(200)]
    second = [again.decide("DELETE", "/v2/messages") for _ in range(200)]
    legacy = [plain.decide("DELETE", "/v2/messages") for _ in range(200)]
    assert first == second
    assert [(d.kind, d.partial_fraction) for d in first] == [(d.kind, d.partial_fraction) for d in legacy]
    assert {d.action_fault for d in first} == {None, "412", "start_lost"}
    assert any(d.action_partial_fraction is not None for d in first)
    assert all(d.action_fault is None for d in (extended.decide("GET", "/v2/bulkActions") for _ in range(50)))


def test_action_fault_config_validation_and_admin_roundtrip(fast: QStashEmulator) -> None:
    with pytest.raises(ValueError, match="rate_spurious_412 \\+ rate_start_lost"):
        FaultConfig(rate_spurious_412=0.6, rate_start_lost=0.6)
    with pytest.raises(ValueError, match="rate_action_partial"):
        FaultConfig(rate_action_partial=2)
    config = FaultConfig(rate_spurious_412=0.1, rate_start_lost=0.2, rate_action_partial=0.3, seed=9)
    response = requests.put(fast.base_url + "/_emulator/faults", json=config.to_dict(), timeout=10)
    assert response.status_code == 200
    assert fast.get_faults() == config


def test_cli_flags_for_action_faults_and_modes() -> None:
    from qstash_emulator.cli import build_parser, faults_from_args

    parser = build_parser()
    args = parser.parse_args(
        ["--fault-spurious-412", "0.1", "--fault-start-lost", "0.2", "--fault-action-partial", "0.3"]
    )
    assert faults_from_args(args) == FaultConfig(rate_spurious_412=0.1, rate_start_lost=0.2, rate_action_partial=0.3)
    assert (args.bulk_cancel, args.action_rate, args.sync_wait) == ("actions", 2000.0, 60.0)
    args = parser.parse_args(["--bulk-cancel", "legacy", "--action-rate", "5", "--sync-wait", "0"])
    assert (args.bulk_cancel, args.action_rate, args.sync_wait) == ("legacy", 5.0, 0.0)
    for bad in (
        ["--bulk-cancel", "new"],
        ["--action-rate", "0"],
        ["--action-rate", "inf"],
        ["--sync-wait", "-1"],
        ["--sync-wait", "nan"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"bulk_cancel": "new"}, {"action_rate": 0}, {"action_rate": float("inf")}, {"sync_wait": -1.0}],
)
def test_runner_refuses_bad_mode_rate_or_wait(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        QStashEmulator(token=TOKEN, **kwargs).start()


# -- the store and the worker, without a server ---------------------------------------------------


def test_action_store_advances_at_the_asked_pace_without_a_server() -> None:
    from qstash_emulator.actions import ActionRunner

    store = MessageStore()
    try:
        actions = ActionStore(store)
        store.add_messages([{"url": "https://e.com/x", "label": "a", "createdAt": i} for i in range(10)])
        started = actions.start(parse_bulk_cancel_query([("label", "a")], honour_count=False))
        assert started.action is not None and started.action["total"] == 10
        runner = ActionRunner(actions, rate=4)
        assert runner.step(now=100.0)  # first sight: nothing yet
        assert runner.step(now=101.0)  # one second at 4/s
        assert actions.all()[0]["processed"] == 4 and store.counts()["cancelled"] == 4
        assert not runner.step(now=103.0)  # done
        assert actions.all()[0]["state"] == "FINISHED" and store.counts()["held"] == 0
    finally:
        store.close()
