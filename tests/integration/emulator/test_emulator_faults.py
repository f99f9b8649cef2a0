"""Fault injection over real HTTP: 429 (burst and daily), 5xx, drop, latency, partial, replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from qstash_emulator import FaultConfig, QStashEmulator
from qstash_emulator.faults import FaultInjector
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(60)


def test_429_burst_with_headers(emu: QStashEmulator, api: Api) -> None:
    emu.seed(20)
    emu.set_faults(FaultConfig(rate_429=1.0, reset_after_s=7, burst_limit=42))
    before = int(time.time())
    response = api.cancel({"count": 5})
    assert response.status_code == 429
    assert isinstance(response.json()["error"], str)
    assert response.headers["Burst-RateLimit-Limit"] == "42"
    assert response.headers["Burst-RateLimit-Remaining"] == "0"
    reset = int(response.headers["Burst-RateLimit-Reset"])
    assert before + 7 <= reset <= int(time.time()) + 7
    assert "RateLimit-Limit" not in response.headers
    assert emu.counts()["cancelled"] == 0
    assert emu.request_log()[-1]["fault"] == "429"


def test_429_reset_zero_means_the_current_second(emu: QStashEmulator, api: Api) -> None:
    emu.set_faults(FaultConfig(rate_429=1.0, reset_after_s=0))
    before = int(time.time())
    response = api.request("GET", "/v2/queues")
    assert response.status_code == 429
    assert before <= int(response.headers["Burst-RateLimit-Reset"]) <= int(time.time())


def test_429_daily_variant(emu: QStashEmulator, api: Api) -> None:
    emu.set_faults(FaultConfig(rate_429_daily=1.0, daily_limit=1000))
    response = api.cancel({"count": 1})
    assert response.status_code == 429
    assert response.headers["RateLimit-Limit"] == "1000"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) >= int(time.time())
    assert "Burst-RateLimit-Limit" not in response.headers


def test_5xx(emu: QStashEmulator, api: Api) -> None:
    emu.seed(10)
    emu.set_faults(FaultConfig(rate_5xx=1.0, seed=1))
    statuses = {api.cancel({"count": 1}).status_code for _ in range(20)}
    assert statuses == {500, 503}
    assert emu.counts()["cancelled"] == 0
    emu.set_faults(FaultConfig(rate_5xx=1.0, statuses_5xx=(502,)))
    response = api.request("GET", "/v2/queues")
    assert response.status_code == 502 and "error" in response.json()


def test_auth_is_checked_before_rate_limit_and_5xx_faults(emu: QStashEmulator) -> None:
    emu.set_faults(FaultConfig(rate_5xx=1.0))
    assert requests.get(emu.base_url + "/v2/queues", timeout=10).status_code == 401


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_drop_closes_the_connection(http: str) -> None:
    with QStashEmulator(token=TOKEN, faults=FaultConfig(rate_drop=1.0), http=http, bulk_cancel="legacy") as emu:
        emu.seed(10)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        for _ in range(3):  # fresh and reused connections alike
            with pytest.raises(requests.ConnectionError):
                session.delete(emu.base_url + "/v2/messages", params={"count": 5}, timeout=5)
        with pytest.raises(requests.ConnectionError):
            session.post(emu.base_url + "/v2/publish/https://e.com/x", data=b"x" * 100_000, timeout=5)
        assert emu.counts() == {"held": 10, "cancelled": 0}
        log = emu.request_log()
        assert [e["fault"] for e in log] == ["drop"] * 4
        assert all(e["status"] is None for e in log)
        # the server is still fine afterwards
        emu.set_faults(None)
        assert session.delete(emu.base_url + "/v2/messages", params={"count": 5}, timeout=5).json() == {"cancelled": 5}


def test_latency_adds_time(emu: QStashEmulator, api: Api) -> None:
    api.request("GET", "/v2/queues")  # warm the connection
    emu.set_faults(FaultConfig(latency_ms=1000))
    # admin routes are never slowed down
    started = time.perf_counter()
    requests.get(emu.base_url + "/_emulator/stats", timeout=10)
    assert time.perf_counter() - started < 1.0
    started = time.perf_counter()
    assert api.request("GET", "/v2/queues").status_code == 200
    assert time.perf_counter() - started >= 1.0
    assert emu.request_log()[-1]["durationMs"] >= 1000


def test_latency_keeps_the_server_concurrent(emu: QStashEmulator) -> None:
    emu.set_faults(FaultConfig(latency_ms=500))
    statuses: list[int] = []

    def call() -> None:
        response = requests.get(emu.base_url + "/v2/queues", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(30)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert statuses == [200] * 30
    assert elapsed < 7.5  # served one by one, 30 x 500 ms would take 15 s


def test_partial_cancels_fewer_and_answers_an_error(emu: QStashEmulator, api: Api) -> None:
    emu.seed(1000, seed=5)
    emu.set_faults(FaultConfig(rate_partial=1.0, seed=3))
    for _ in range(10):
        held_before = emu.counts()["held"]
        response = api.cancel({"count": 100})
        assert response.status_code == 500
        error = response.json()["error"]
        assert error.startswith("failed to cancel message msg_")
        failed_id = error.split()[-1]
        cancelled_now = held_before - emu.counts()["held"]
        assert 0 <= cancelled_now < 100
        assert failed_id in emu.held_ids()  # the one it stopped at is still there
    assert emu.request_log()[-1]["fault"] == "partial"


def test_partial_can_cancel_nothing_and_takes_the_oldest(emu: QStashEmulator, api: Api) -> None:
    emu.seed(200, seed=5)
    oldest = sorted(emu.messages(), key=lambda m: (m["createdAt"], m["messageId"]))
    results = set()
    for seed in range(40):
        emu.set_faults(FaultConfig(rate_partial=1.0, seed=seed))
        held_before = emu.held_ids()
        assert api.cancel({"count": 3}).status_code == 500
        gone = held_before - emu.held_ids()
        results.add(len(gone))
        remaining_oldest = [m["messageId"] for m in oldest if m["messageId"] in held_before]
        assert gone == set(remaining_oldest[: len(gone)])
    assert results == {0, 1, 2}


def test_partial_only_affects_bulk_cancel(emu: QStashEmulator, api: Api) -> None:
    (message_id,) = emu.add_messages([{"url": "https://e.com/x"}])
    emu.set_faults(FaultConfig(rate_partial=1.0))
    assert api.request("GET", "/v2/queues").status_code == 200
    assert api.request("DELETE", f"/v2/messages/{message_id}").status_code == 202


def test_partial_with_nothing_selected_answers_zero(emu: QStashEmulator, api: Api) -> None:
    emu.set_faults(FaultConfig(rate_partial=1.0))
    response = api.cancel({"label": "nothing"})
    assert response.status_code == 200 and response.json() == {"cancelled": 0}


def test_fail_always_status(emu: QStashEmulator, api: Api) -> None:
    emu.seed(5)
    emu.set_faults(FaultConfig(fail_always_status=400))
    for _ in range(3):
        response = api.cancel({"count": 1})
        assert response.status_code == 400 and "error" in response.json()
    assert emu.counts()["cancelled"] == 0


def _sequence(api: Api, n: int) -> list[int | str]:
    outcome: list[int | str] = []
    for _ in range(n):
        try:
            outcome.append(api.cancel({"count": 1}, timeout=5).status_code)
        except requests.ConnectionError:
            outcome.append("drop")
    return outcome


def test_same_seed_same_fault_sequence(emu: QStashEmulator, api: Api) -> None:
    emu.seed(200)
    config = FaultConfig(rate_429=0.2, rate_5xx=0.2, rate_drop=0.1, rate_partial=0.3, seed=1234)
    emu.set_faults(config)
    first = _sequence(api, 40)
    emu.set_faults(config)
    second = _sequence(api, 40)
    assert first == second
    assert {200, 429, "drop", 500} <= set(first) or {200, 429, "drop", 503} <= set(first)
    emu.set_faults(FaultConfig(rate_429=0.2, rate_5xx=0.2, rate_drop=0.1, rate_partial=0.3, seed=99))
    assert _sequence(api, 40) != first


def test_reset_restores_the_initial_faults() -> None:
    with QStashEmulator(token=TOKEN, faults=FaultConfig(rate_5xx=1.0, statuses_5xx=(503,))) as emu:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        emu.set_faults(None)
        assert requests.get(emu.base_url + "/v2/queues", headers=headers, timeout=5).status_code == 200
        emu.reset()
        assert requests.get(emu.base_url + "/v2/queues", headers=headers, timeout=5).status_code == 503


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(rate_429=1.5)
    with pytest.raises(ValueError):
        FaultConfig(rate_429=0.6, rate_5xx=0.6)
    with pytest.raises(ValueError):
        FaultConfig(statuses_5xx=(404,))
    with pytest.raises(ValueError):
        FaultConfig(fail_always_status=200)
    with pytest.raises(ValueError):
        FaultConfig.from_dict({"nope": 1})
    config = FaultConfig(rate_drop=0.25, statuses_5xx=(500,), fail_always_status=None)
    assert FaultConfig.from_dict(config.to_dict()) == config


def test_injector_draws_the_same_numbers_whatever_the_outcome() -> None:
    """A replay only needs the same request sequence, not the same outcomes."""
    a = FaultInjector(FaultConfig(rate_429=0.5, seed=7))
    b = FaultInjector(FaultConfig(rate_429=0.5, seed=7))
    kinds_a = [a.decide("DELETE", "/v2/messages").kind for _ in range(50)]
    kinds_b = [b.decide("GET", "/v2/queues").kind for _ in range(50)]
    assert kinds_a == kinds_b
    assert FaultInjector(None).decide("DELETE", "/v2/messages").kind is None


@pytest.fixture
def hundred_streams_emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TOKEN, bulk_cancel="legacy") as emu:
        emu.seed(20_000, seed=2)
        yield emu


def test_serves_100_concurrent_streams(hundred_streams_emulator: QStashEmulator) -> None:
    emu = hundred_streams_emulator
    errors: list[str] = []
    totals: list[int] = []

    def stream(i: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {TOKEN}"
            label = f"label-{i % 10}"
            total = 0
            for _ in range(3):
                response = session.delete(
                    emu.base_url + "/v2/messages", params={"label": label, "count": "20"}, timeout=30
                )
                if response.status_code != 200:
                    errors.append(response.text)
                    return
                total += response.json()["cancelled"]
            totals.append(total)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(totals) == 100
    assert emu.counts()["cancelled"] == sum(totals) == 6000
