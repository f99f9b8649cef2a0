"""Issue 17.10: an unreadable number is a 400 (never a 500), and the request log is bounded in bytes, keeps
nothing a caller without the token sent, and serves no credential back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from qstash_emulator import InProcessEmulator, QStashEmulator
from qstash_emulator.state import (
    DEFAULT_REQUEST_LOG_BYTES,
    REDACTED,
    UNAUTHORIZED_PATH_CHARS,
    RequestLog,
    entry_size,
    redact_query,
)
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(120)

INT64_MAX = 2**63 - 1

# -- numbers outside int64 -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize(
    "cursor",
    [
        f"{INT64_MAX + 1}.1",  # createdAt one past int64 (19 digits: the cursor's form accepts it)
        f"1.{INT64_MAX + 1}",  # position one past int64
        f"-{INT64_MAX + 2}.0",  # createdAt below int64
        "9999999999999999999.9999999999999999999",
        "1.-1",
        "1.",
        "." + "1" * 5,
    ],
)
def test_a_dlq_cursor_outside_int64_is_a_400(emu: QStashEmulator, api: Api, method: str, cursor: str) -> None:
    emu.seed_dlq(5, seed=1)
    path = "/v2/dlq/retry" if method == "POST" else "/v2/dlq"
    response = api.request(method, path, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert "cursor" in response.json()["error"]
    assert len(emu.dlq_ids()) == 5


def test_the_largest_cursor_the_database_holds_is_read(emu: QStashEmulator, api: Api) -> None:
    emu.seed_dlq(3, seed=1)
    response = api.request("GET", "/v2/dlq", params={"cursor": f"{INT64_MAX}.{INT64_MAX}", "order": "earliestFirst"})
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == []


BIG = str(INT64_MAX + 1)


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/v2/dlq", {"fromDate": BIG}),
        ("GET", "/v2/dlq", {"toDate": "-" + BIG + "0"}),
        ("GET", "/v2/dlq", {"responseStatus": BIG}),
        ("GET", "/v2/dlq", {"count": BIG}),
        ("DELETE", "/v2/dlq", {"toDate": BIG}),
        ("POST", "/v2/dlq/retry", {"fromDate": BIG}),
        ("DELETE", "/v2/messages", {"fromDate": BIG}),
        ("DELETE", "/v2/messages", {"toDate": BIG}),
        ("DELETE", "/v2/messages", {"count": BIG}),
    ],
)
def test_every_number_of_the_v2_routes_outside_int64_is_a_400(
    emu: QStashEmulator, api: Api, method: str, path: str, params: dict[str, str]
) -> None:
    emu.seed(5)
    emu.seed_dlq(5, seed=1)
    response = api.request(method, path, params=params)
    assert response.status_code == 400, response.text
    assert next(iter(params)) in response.json()["error"]
    assert emu.counts()["held"] == 5 and len(emu.dlq_ids()) == 5


# -- the request log: no credential served back ----------------------------------------------------


def test_the_query_token_is_redacted_in_the_request_log(emu: QStashEmulator) -> None:
    response = requests.get(
        emu.base_url + "/v2/queues", params=[("qstash_token", TOKEN), ("label", "billing")], timeout=10
    )
    assert response.status_code == 200
    (entry,) = emu.request_log()
    assert entry["query"] == [("qstash_token", REDACTED), ("label", "billing")]
    assert entry["authorized"] is True
    served = requests.get(emu.base_url + "/_emulator/requests", timeout=10).text
    assert TOKEN not in served


@pytest.mark.parametrize(
    ("pair", "kept"),
    [
        (("api_key", "k-123"), ("api_key", REDACTED)),
        (("key", "k-123"), ("key", REDACTED)),
        (("upstashSignature", "sig"), ("upstashSignature", REDACTED)),
        (("client_secret", "s"), ("client_secret", REDACTED)),
        (("access_token", "t"), ("access_token", REDACTED)),
        (("password", "p"), ("password", REDACTED)),
        (("label", "Bearer abc.def"), ("label", REDACTED)),
        (("label", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"), ("label", REDACTED)),
        (("label", f"x-{TOKEN}-y"), ("label", f"x-{REDACTED}-y")),
        # names of the API that merely contain "key" are filters, kept as sent
        (("flowControlKey", "fck-1"), ("flowControlKey", "fck-1")),
        (("label", "billing"), ("label", "billing")),
    ],
)
def test_token_like_values_are_redacted(emu: QStashEmulator, api: Api, pair: tuple[str, str], kept: tuple[str, str]):
    assert api.request("GET", "/v2/queues", params=[pair]).status_code == 200
    (entry,) = emu.request_log()
    assert entry["query"] == [kept]


def test_the_token_in_a_path_is_redacted(emu: QStashEmulator, api: Api) -> None:
    api.request("GET", f"/v2/messages/msg-{TOKEN}")
    (entry,) = emu.request_log()
    assert entry["path"] == f"/v2/messages/msg-{REDACTED}" and TOKEN not in json.dumps(entry)


# -- the request log: nothing kept of an unauthenticated request ----------------------------------


@pytest.mark.parametrize(
    "auth",
    [{}, {"headers": {"Authorization": "Bearer wrong"}}, {"params": {"qstash_token": "wrong"}}],
    ids=["no-token", "wrong-bearer", "wrong-query-token"],
)
def test_an_unauthenticated_request_keeps_no_query_and_a_short_path(emu: QStashEmulator, auth: dict) -> None:
    params = {**auth.get("params", {}), "label": "x" * 5000}
    long_path = "/v2/messages/" + "m" * 5000
    response = requests.delete(emu.base_url + long_path, params=params, headers=auth.get("headers"), timeout=10)
    assert response.status_code == 401
    (entry,) = emu.request_log()
    assert entry["query"] == [] and entry["authorized"] is False and entry["status"] == 401
    assert entry["path"] == long_path[:UNAUTHORIZED_PATH_CHARS]
    assert "wrong" not in json.dumps(entry)


def test_200_unauthenticated_60kb_requests_hold_a_few_bytes_each(emu: QStashEmulator) -> None:
    """The issue's figure: 200 requests of 60 kB held 11.4 MiB; now each counts for its fixed fields only."""
    filler = "f" * 60_000
    with requests.Session() as session:
        for _ in range(200):
            assert (
                session.delete(emu.base_url + "/v2/messages", params={"label": filler}, timeout=10).status_code == 401
            )
    log = emu.state.request_log
    assert len(log.entries()) == 200
    assert log.bytes <= 200 * (entry_size({"method": "DELETE", "path": "/v2/messages", "query": []}))
    assert log.bytes < 300_000  # 1.5 kB each, not 60 kB


# -- the request log: bounded in bytes -------------------------------------------------------------


@pytest.fixture
def small_log() -> Iterator[QStashEmulator]:
    with InProcessEmulator(token=TOKEN, bulk_cancel="legacy", request_log_bytes=100_000) as emu:
        yield emu


def test_the_request_log_is_bounded_in_bytes(small_log: QStashEmulator) -> None:
    api = Api(small_log)
    for i in range(30):
        assert api.request("GET", "/v2/queues", params={"label": f"{i:03d}" + "x" * 20_000}).status_code == 200
    log = small_log.state.request_log
    entries = log.entries()
    assert log.bytes <= 100_000 == log.max_bytes
    assert 3 <= len(entries) <= 4  # four entries of ~20 kB fit in 100,000 bytes, not five
    assert entries[-1]["query"][0][1].startswith("029")  # the newest are kept
    assert log.bytes == sum(entry_size(e) for e in entries)
    # what went is said: a count read from the log is short by exactly this
    assert small_log.request_log_dropped() == log.dropped == 30 - len(entries)
    small_log.clear_request_log()
    assert small_log.request_log_dropped() == 0


def test_an_entry_larger_than_the_whole_log_keeps_no_query() -> None:
    with InProcessEmulator(token=TOKEN, bulk_cancel="legacy", request_log_bytes=10_000) as emu:
        api = Api(emu)
        api.request("GET", "/v2/queues", params={"label": "a"})
        assert api.request("GET", "/v2/queues", params={"label": "x" * 20_000}).status_code == 200
        entries = emu.request_log()
        assert entries[-1]["queryOmitted"] is True and entries[-1]["query"] == []
        assert entries[0]["query"] == [("label", "a")] and entries[0]["queryOmitted"] is False
        assert emu.state.request_log.bytes <= 10_000


def test_the_default_byte_bound_is_declared() -> None:
    assert RequestLog().max_bytes == DEFAULT_REQUEST_LOG_BYTES == 64 * 1024 * 1024


@pytest.mark.parametrize("bound", [{"maxlen": 0}, {"max_bytes": 0}, {"max_bytes": True}, {"max_bytes": 1.5}])
def test_a_request_log_bound_must_be_a_positive_integer(bound: dict) -> None:
    with pytest.raises(ValueError, match="request log"):
        RequestLog(**bound)


def test_redact_query_keeps_the_filters_it_does_not_recognise_as_secrets() -> None:
    query = [("label", "a"), ("qstash_token", "t"), ("queueName", "q")]
    assert redact_query(query, "zzz") == [("label", "a"), ("qstash_token", REDACTED), ("queueName", "q")]


# -- a client that goes away before its request is read ---------------------------------------------


def test_a_client_that_closes_before_its_body_is_read_is_logged_499_and_nothing_is_cancelled(
    emu: QStashEmulator,
) -> None:
    """A killed triggerer drops its connection mid-request: the emulator logs 499 (no 500, no traceback) and
    the request, never read whole, acts on nothing."""
    import socket
    import time
    from urllib.parse import urlsplit

    ids = emu.add_messages([{"url": "https://example.com/a", "label": "x"} for _ in range(3)])
    url = urlsplit(emu.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(
            b"DELETE /v2/messages?label=x HTTP/1.1\r\nHost: emulator\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            + b'{"messageIds": ['
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not [e for e in emu.request_log() if e.get("method") == "DELETE"]:
        time.sleep(0.02)
    deletes = [entry for entry in emu.request_log() if entry.get("method") == "DELETE"]
    assert [entry["status"] for entry in deletes] == [499]
    assert set(ids) <= emu.held_ids()
