"""QStashAsyncHook over httpx: the same wire as the requests hook, and the same retry policy."""

from __future__ import annotations

import asyncio
import functools
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tenacity import AsyncRetrying

import airflow_qstash.hooks.qstash as qstash_module
from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError, QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.protocol.endpoints import MAX_URL_LENGTH
from airflow_qstash.protocol.messages import BatchCancelled
from tests.conftest import FAKE_BASE_URL, TEST_TOKEN, connection_json
from tests.doubles.fake_qstash import Answer, AsyncClient, Drop, FakeQStash, Script
from tests.support.clock import pin_wall_clock

JAN_1_MS = 1_704_067_200_000
JAN_2_MS = JAN_1_MS + 86_400_000


def scripted(*answers: Script) -> FakeQStash:
    """The scripted fake with ``answers`` (in order, the last one repeated) on ``DELETE /v2/messages``."""
    fake = FakeQStash()
    fake.route("DELETE", "/v2/messages", *answers)
    return fake


def cancel(fake: FakeQStash, bulk_filter, count=None, conn_id="qstash_default"):
    """``QStashAsyncHook.bulk_cancel_by_filter`` against ``fake`` (pauses as the ``waits`` fixture makes them)."""
    return AsyncClient(fake, []).run("bulk_cancel_by_filter", bulk_filter, count, conn_id=conn_id)


def queries(fake: FakeQStash) -> list[str]:
    """Each request's raw query string."""
    return [sent.query for sent in fake.sent]


@pytest.fixture
def waits(monkeypatch):
    """Make tenacity's async sleep a recorder, so retries are instant and their waits visible."""
    recorded: list[float] = []

    async def fake_sleep(seconds):
        recorded.append(seconds)

    monkeypatch.setattr(qstash_module, "AsyncRetrying", functools.partial(AsyncRetrying, sleep=fake_sleep))
    return recorded


def ok(cancelled):
    return Answer(200, {"cancelled": cancelled})


LABELS_FILTER = BulkCancelFilter.build(labels="a")


# --------------------------------------------------------------------------- the same wire as the sync hook


FILTERS = {
    "every-filter": (
        BulkCancelFilter.build(
            url_groups=["g1", "g2"],
            queue_names="q1",
            urls="https://example.com/päth?q=1&r=two words#f",
            hosts="example.com",
            paths="/hook",
            labels=["Prod-EU", "ünïcødé 🚀", "a&b=c", "x+y", "50%"],
            flow_control_keys="fk",
            schedule_ids="scd_1",
            caller_ips="203.0.113.7",
            from_date="2024-01-01 00:00:00+00:00",
            to_date=JAN_2_MS,
        ),
        100,
    ),
    "message-ids": (BulkCancelFilter.build(message_ids=["msg_1", "msg/2"]), None),
    "cancel-all": (BulkCancelFilter.build(cancel_all=True), 500),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_same_query_as_the_sync_hook(qstash_conn, requests_mock, name):
    bulk_filter, count = FILTERS[name]
    requests_mock.delete(f"{FAKE_BASE_URL}/v2/messages", json={"cancelled": 1})
    assert QStashHook().bulk_cancel_by_filter(bulk_filter, count) == BatchCancelled(1)
    sync_request = requests_mock.last_request
    sync_query = urlsplit(sync_request.url).query

    fake = scripted(ok(1))
    assert cancel(fake, bulk_filter, count) == BatchCancelled(1)
    assert len(fake.sent) == 1
    request = fake.sent[0]
    assert queries(fake) == [sync_query]
    assert request.url == sync_request.url
    assert request.method == "DELETE" == sync_request.method
    assert request.path == "/v2/messages"
    assert request.headers["authorization"] == f"Bearer {TEST_TOKEN}"
    assert request.headers["user-agent"] == "airflow-provider-qstash"


def test_exact_query(qstash_conn):
    fake = scripted(ok(3))
    bulk_filter = BulkCancelFilter.build(labels=["a", "B"], queue_names="q", from_date=JAN_1_MS, to_date=JAN_2_MS)
    assert cancel(fake, bulk_filter, 10) == BatchCancelled(3)
    assert queries(fake) == [f"queueName=q&label=a&label=B&fromDate={JAN_1_MS}&toDate={JAN_2_MS}&count=10&async=true"]
    assert fake.sent[0].url.startswith(f"{FAKE_BASE_URL}/v2/messages?")


@pytest.mark.parametrize("base_url", [FAKE_BASE_URL, "https://" + ".".join(["prefix" * 10] * 4) + ".test"])
def test_long_message_id_list_is_split_like_the_sync_hook(monkeypatch, requests_mock, base_url):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_SPLIT", connection_json(host=base_url))
    ids = [f"msg_{i:028d}" for i in range(2000)]
    bulk_filter = BulkCancelFilter.build(message_ids=ids)

    def answer(sent):
        return ok(len(parse_qs(sent.query)["messageIds"]))

    requests_mock.delete(
        f"{base_url}/v2/messages",
        json=lambda request, context: {"cancelled": len(parse_qs(urlsplit(request.url).query)["messageIds"])},
    )
    assert QStashHook("qstash_split").bulk_cancel_by_filter(bulk_filter, 500) == BatchCancelled(len(ids))
    sync_urls = [request.url for request in requests_mock.request_history]

    fake = scripted(answer)
    assert cancel(fake, bulk_filter, 500, conn_id="qstash_split") == BatchCancelled(len(ids))
    urls = [sent.url for sent in fake.sent]
    assert len(urls) > 1
    assert urls == sync_urls
    assert all(len(url) <= MAX_URL_LENGTH for url in urls)
    sent = [value for query in queries(fake) for value in parse_qs(query)["messageIds"]]
    assert sent == ids


def test_a_bad_count_sends_nothing(qstash_conn):
    fake = scripted(ok(1))
    with pytest.raises(QStashInputError, match="count"):
        cancel(fake, LABELS_FILTER, 0)
    assert fake.sent == []


def test_a_broken_connection_sends_nothing(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_BROKEN", connection_json(token=None))
    fake = scripted(ok(1))
    with pytest.raises(QStashConnectionError, match="qstash_broken"):
        cancel(fake, LABELS_FILTER, conn_id="qstash_broken")
    assert fake.sent == []


def test_the_real_client_carries_base_url_auth_and_timeout(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_REGION", connection_json(host="eu-central-1", timeout=7))

    async def build():
        hook = QStashAsyncHook("qstash_region")
        client = await hook._get_client()
        try:
            assert await hook._get_client() is client  # one client per hook
            return client.base_url, client.headers["Authorization"], client.timeout.read
        finally:
            await hook.aclose()
            assert hook._client is None

    assert asyncio.run(build()) == (
        httpx.URL("https://qstash-eu-central-1.upstash.io"),
        f"Bearer {TEST_TOKEN}",
        7.0,
    )


def test_repr_hides_the_token(qstash_conn):
    hook = QStashAsyncHook()
    config = asyncio.run(hook.get_config())
    assert config.token == TEST_TOKEN
    assert TEST_TOKEN not in repr(hook)
    assert TEST_TOKEN not in repr(config)


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("with_remaining", [True, False])
def test_429_waits_for_the_burst_reset(qstash_conn, waits, with_remaining, monkeypatch):
    now = pin_wall_clock(monkeypatch)
    reset = int(now) + 3
    headers = {"Burst-RateLimit-Reset": str(reset)}
    if with_remaining:
        headers["Burst-RateLimit-Remaining"] = "0"
    fake = scripted(Answer(429, {"error": "slow down"}, headers=headers), ok(5))
    assert cancel(fake, LABELS_FILTER) == BatchCancelled(5)
    assert len(fake.sent) == 2
    assert len(waits) == 1
    assert reset - now <= waits[0] <= reset - now + 0.1  # the header's wait (+ up to 0.1 s jitter)


def test_429_with_retry_after(qstash_conn, waits):
    fake = scripted(Answer(429, headers={"Retry-After": "2"}), ok(1))
    assert cancel(fake, LABELS_FILTER) == BatchCancelled(1)
    assert len(fake.sent) == 2
    assert len(waits) == 1
    assert 2.0 <= waits[0] <= 2.11


def test_429_with_a_far_daily_reset_fails_at_once(qstash_conn, waits):
    headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 6 * 3600)}
    fake = scripted(Answer(429, {"error": "daily quota exceeded"}, headers=headers), ok(1))
    with pytest.raises(QStashAPIError) as info:
        cancel(fake, LABELS_FILTER)
    assert "429" in str(info.value)
    assert "max_rate_limit_wait" in str(info.value)
    assert len(fake.sent) == 1
    assert waits == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_200_is_retried(qstash_conn, waits, status):
    fake = scripted(Answer(status, {"error": "busy"}), ok(2))
    assert cancel(fake, LABELS_FILTER) == BatchCancelled(2)
    assert len(fake.sent) == 2
    assert len(waits) == 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_network_errors_then_200_are_retried(qstash_conn, waits, error):
    fake = scripted(Drop(error), Drop(error), ok(9))
    assert cancel(fake, LABELS_FILTER) == BatchCancelled(9)
    assert len(fake.sent) == 3
    assert len(waits) == 2


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (Answer(503, {"error": "service unavailable"}), "503: service unavailable"),
        (Drop(httpx.ConnectError("connection refused")), "ConnectError"),
    ],
)
def test_retries_exhausted(qstash_conn, waits, answer, fragment):
    fake = scripted(answer)
    with pytest.raises(QStashAPIError) as info:
        cancel(fake, LABELS_FILTER)
    # qstash_conn has max_retries=3
    assert fragment in str(info.value)
    assert "gave up after 4 attempts" in str(info.value)
    assert len(fake.sent) == 4
    assert len(waits) == 3


@pytest.mark.parametrize(
    ("status", "error", "hint"),
    [(401, "invalid token", "Check the token"), (400, "invalid fromDate", ""), (403, "forbidden", "")],
)
def test_client_errors_fail_fast(qstash_conn, waits, status, error, hint):
    fake = scripted(Answer(status, {"error": error}), ok(1))
    with pytest.raises(QStashAPIError) as info:
        cancel(fake, LABELS_FILTER)
    message = str(info.value)
    assert str(status) in message
    assert error in message
    assert hint in message
    assert TEST_TOKEN not in message
    assert info.value.http_status == status
    assert info.value.api_error == error
    assert len(fake.sent) == 1
    assert waits == []


@pytest.mark.parametrize(
    ("response", "fragment"),
    [
        (Answer(200, text="<html>ok</html>"), "not JSON"),
        (Answer(200, {"deleted": 3}), "cancelled"),
        (Answer(200, text=""), "cancelled"),
    ],
)
def test_200_without_a_valid_count_is_an_error(qstash_conn, waits, response, fragment):
    fake = scripted(response)
    with pytest.raises(QStashAPIError, match=fragment):
        cancel(fake, LABELS_FILTER)
    assert len(fake.sent) == 1
