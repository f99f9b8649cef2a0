"""Store and query parsing without HTTP: index use, atomicity, seeding, thread safety."""

from __future__ import annotations

import threading

import pytest

from qstash_emulator.query import QueryError, parse_bulk_cancel_query, split_values
from qstash_emulator.store import _INDEXES, BULK_LOAD_THRESHOLD, MessageStore, split_url

pytestmark = pytest.mark.timeout(120)


# -- query parsing ------------------------------------------------------------------------------


def test_split_values_dedups_strips_and_drops_empties() -> None:
    assert split_values(["a,b", " b ,c", "", ",,", "a"]) == ("a", "b", "c")


def test_parse_merges_forms_and_deprecated_caller_ip() -> None:
    query = parse_bulk_cancel_query(
        [("label", "a"), ("label", "b,c"), ("callerIP", "1.1.1.1"), ("callerIp", "2.2.2.2"), ("count", " 7 ")]
    )
    assert dict(query.values) == {"label": ("a", "b", "c"), "callerIp": ("1.1.1.1", "2.2.2.2")}
    assert query.count == 7 and query.has_filter


def test_parse_message_ids_drop_other_filters_but_keep_count() -> None:
    query = parse_bulk_cancel_query([("messageIds", "x,y"), ("label", "a"), ("fromDate", "5"), ("count", "1")])
    assert query.message_ids == ("x", "y")
    assert dict(query.values) == {} and query.from_date is None and query.count == 1


def test_parse_ignores_unknown_parameters_and_empty_values() -> None:
    query = parse_bulk_cancel_query([("qstash_token", "t"), ("nope", "1"), ("label", ""), ("queueName", ",")])
    assert not query.has_filter and query.count is None


@pytest.mark.parametrize(
    "items",
    [
        [("count", "0")],
        [("count", "501")],
        [("count", "x")],
        [("count", "1"), ("count", "2")],
        [("fromDate", "1e3")],
        [("toDate", "")],
    ],
)
def test_parse_refusals(items: list[tuple[str, str]]) -> None:
    with pytest.raises(QueryError):
        parse_bulk_cancel_query(items)


@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("https://example.com", "example.com", ""),
        ("https://user:pw@example.com:8443/a/b?x=1", "example.com:8443", "/a/b"),
        ("http://127.0.0.1:9000/", "127.0.0.1:9000", "/"),
    ],
)
def test_split_url(url: str, host: str, path: str) -> None:
    assert split_url(url) == (host, path)


@pytest.mark.parametrize("url", ["example.com/x", "ftp://example.com", "https://", "/relative"])
def test_split_url_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError):
        split_url(url)


# -- index use ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_store() -> MessageStore:
    store = MessageStore()
    store.seed(5000, seed=1, now=1_800_000_000_000)
    return store


@pytest.mark.parametrize(
    "items",
    [
        [("count", "500")],
        [("fromDate", "1797000000000"), ("toDate", "1798000000000"), ("count", "500")],
        [("label", "label-1"), ("fromDate", "1797000000000"), ("count", "500")],
        [("label", "label-1,label-2"), ("queueName", "queue-1"), ("count", "500")],
        [("topicName", "group-0"), ("count", "500")],
        [("queueName", "queue-0,queue-3"), ("count", "500")],
        [("url", "https://api.example.com/"), ("count", "500")],
        [("host", "api.example.com"), ("count", "500")],
        [("path", "/webhook"), ("count", "500")],
        [("flowControlKey", "fck-1"), ("label", "label-3"), ("count", "500")],
        [("scheduleId", "scd-01"), ("count", "500")],
        [("callerIp", "203.0.113.1"), ("count", "500")],
    ],
)
def test_count_limited_selection_walks_an_index_in_created_at_order(
    seeded_store: MessageStore, items: list[tuple[str, str]]
) -> None:
    """No full table scan and no sort of every match: the LIMIT stops an ordered index walk."""
    plans = seeded_store.explain(parse_bulk_cancel_query(items))
    assert plans
    for plan in plans:
        assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        assert "SCAN messages" not in plan and "SCAN m " not in plan.replace("SCAN m USING INDEX", ""), plan


def test_indexes_survive_a_bulk_seed() -> None:
    store = MessageStore()
    store.seed(BULK_LOAD_THRESHOLD, seed=2)
    names = {row[0] for row in store._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert set(_INDEXES) <= names
    assert store.counts() == {"held": BULK_LOAD_THRESHOLD, "cancelled": 0}
    result = store.bulk_cancel(parse_bulk_cancel_query([("label", "label-4"), ("count", "500")]))
    assert result.cancelled == 500
    with pytest.raises(ValueError):
        store.add_messages([{"url": "https://e.com", "messageId": store.messages(limit=1)[0]["messageId"]}])


def test_insert_is_atomic() -> None:
    store = MessageStore()
    store.add_messages([{"url": "https://e.com/a", "messageId": "dup", "queueName": "q"}])
    with pytest.raises(ValueError):
        store.add_messages(
            [{"url": "https://e.com/b", "queueName": "q"}, {"url": "https://e.com/c", "messageId": "dup"}]
        )
    assert store.counts() == {"held": 1, "cancelled": 0}
    assert [q["lag"] for q in store.queues()] == [1]


def test_two_labels_in_the_filter_count_a_message_once() -> None:
    store = MessageStore()
    store.add_messages([{"url": "https://e.com/a", "labels": ["x", "y"]}, {"url": "https://e.com/b", "label": "y"}])
    result = store.bulk_cancel(parse_bulk_cancel_query([("label", "x,y"), ("count", "2")]))
    assert result.cancelled == 2
    assert store.counts() == {"held": 0, "cancelled": 2}


def test_concurrent_inserts_and_cancels_stay_consistent() -> None:
    store = MessageStore()
    cancelled: list[int] = []
    errors: list[BaseException] = []

    def producer(i: int) -> None:
        try:
            for j in range(20):
                store.add_messages([{"url": f"https://e.com/{i}/{j}", "label": f"l{i % 3}"} for _ in range(10)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def consumer(i: int) -> None:
        try:
            for _ in range(40):
                query = parse_bulk_cancel_query([("label", f"l{i % 3}"), ("count", "7")])
                cancelled.append(store.bulk_cancel(query).cancelled)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=consumer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = store.counts()
    assert counts["held"] + counts["cancelled"] == 4 * 20 * 10
    assert counts["cancelled"] == sum(cancelled)
