"""``DELETE /v2/messages`` over real HTTP: every filter, OR/AND rules, dates, count, messageIds."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from qstash_emulator import QStashEmulator
from tests.integration.emulator.emulator_testlib import Api

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000_000

DATASET: list[dict[str, Any]] = [
    {
        "messageId": "m0",
        "url": "https://a.example.com/x",
        "labels": ["red"],
        "queueName": "q1",
        "flowControlKey": "f1",
        "scheduleId": "s1",
        "callerIp": "10.0.0.1",
        "createdAt": T0,
    },
    {
        "messageId": "m1",
        "url": "https://a.example.com/y",
        "label": "blue",
        "queueName": "q2",
        "flowControlKey": "f2",
        "callerIp": "10.0.0.2",
        "createdAt": T0 + 1000,
    },
    {
        "messageId": "m2",
        "url": "https://b.example.com:8080/x",
        "labels": ["red", "green"],
        "queueName": "q1",
        "topicName": "g1",
        "scheduleId": "s2",
        "callerIp": "10.0.0.1",
        "createdAt": T0 + 2000,
    },
    {
        "messageId": "m3",
        "url": "https://b.example.com:8080/y",
        "topicName": "g1",
        "flowControlKey": "f1",
        "callerIp": "10.0.0.3",
        "createdAt": T0 + 3000,
    },
    {
        "messageId": "m4",
        "url": "https://c.example.org/z?x=1",
        "label": "green",
        "queueName": "q3",
        "topicName": "g2",
        "flowControlKey": "f3",
        "scheduleId": "s1",
        "callerIp": "10.0.0.2",
        "createdAt": T0 + 4000,
    },
    {
        "messageId": "m5",
        "url": "http://a.example.com/x",
        "label": "blue,red",
        "queueName": "q2",
        "callerIp": "10.0.0.4",
        "createdAt": T0 + 5000,
    },
    {
        "messageId": "m6",
        "url": "https://a.example.com/x",
        "labels": ["yellow"],
        "callerIp": "10.0.0.1",
        "createdAt": T0 + 6000,
    },
]
ALL_IDS = {m["messageId"] for m in DATASET}


def _attr(message: dict[str, Any], name: str) -> set[str]:
    """The value(s) a filter sees on one dataset message."""
    if name == "label":
        labels = list(message.get("labels", []))
        if "label" in message:
            labels += message["label"].split(",")
        return set(labels)
    if name == "host":
        return {urlsplit(message["url"]).netloc}
    if name == "path":
        return {urlsplit(message["url"]).path}
    value = message.get(name)
    return set() if value is None else {value}


def expected_ids(filters: dict[str, list[str]], from_date: int | None = None, to_date: int | None = None) -> set[str]:
    """Reference model of the API's rules: OR within a filter, AND across, inclusive dates."""
    selected = set()
    for message in DATASET:
        if from_date is not None and message["createdAt"] < from_date:
            continue
        if to_date is not None and message["createdAt"] > to_date:
            continue
        if all(_attr(message, name) & set(values) for name, values in filters.items()):
            selected.add(message["messageId"])
    return selected


@pytest.fixture
def loaded(emu: QStashEmulator) -> QStashEmulator:
    emu.add_messages(DATASET)
    return emu


def cancelled_ids(emu: QStashEmulator) -> set[str]:
    return {m["messageId"] for m in emu.messages("cancelled")}


SINGLE_FILTERS = [
    ("topicName", "g1"),
    ("queueName", "q1"),
    ("url", "https://a.example.com/x"),
    ("url", "https://c.example.org/z?x=1"),
    ("host", "b.example.com:8080"),
    ("host", "a.example.com"),
    ("path", "/y"),
    ("label", "red"),
    ("label", "green"),
    ("flowControlKey", "f1"),
    ("scheduleId", "s1"),
    ("callerIp", "10.0.0.1"),
]


@pytest.mark.parametrize(("name", "value"), SINGLE_FILTERS)
def test_each_filter_alone(loaded: QStashEmulator, api: Api, name: str, value: str) -> None:
    expected = expected_ids({name: [value]})
    assert expected and expected != ALL_IDS  # the case really filters
    assert api.cancelled({name: value}) == len(expected)
    assert cancelled_ids(loaded) == expected
    assert loaded.held_ids() == ALL_IDS - expected


def test_deprecated_caller_ip_spelling(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"callerIP": "10.0.0.2"}) == 2
    assert cancelled_ids(loaded) == {"m1", "m4"}


def test_caller_ip_and_deprecated_spelling_are_merged(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled([("callerIp", "10.0.0.3"), ("callerIP", "10.0.0.4")]) == 2
    assert cancelled_ids(loaded) == {"m3", "m5"}


@pytest.mark.parametrize(
    "params",
    [
        [("label", "blue"), ("label", "green")],
        [("label", "blue,green")],
        [("label", " blue , green ")],
        [("label", "blue,"), ("label", "green")],
    ],
    ids=["repeated", "comma", "comma-with-spaces", "mixed"],
)
def test_or_within_one_filter(loaded: QStashEmulator, api: Api, params: list[tuple[str, str]]) -> None:
    expected = expected_ids({"label": ["blue", "green"]})
    assert expected == {"m1", "m2", "m4", "m5"}
    assert api.cancelled(params) == len(expected)
    assert cancelled_ids(loaded) == expected


@pytest.mark.parametrize(
    ("params", "model"),
    [
        ([("queueName", "q1"), ("queueName", "q3")], {"queueName": ["q1", "q3"]}),
        ([("topicName", "g1,g2")], {"topicName": ["g1", "g2"]}),
        ([("scheduleId", "s1,s2")], {"scheduleId": ["s1", "s2"]}),
        ([("flowControlKey", "f2"), ("flowControlKey", "f3")], {"flowControlKey": ["f2", "f3"]}),
        (
            [("url", "https://a.example.com/y,http://a.example.com/x")],
            {"url": ["https://a.example.com/y", "http://a.example.com/x"]},
        ),
        ([("path", "/y"), ("path", "/z")], {"path": ["/y", "/z"]}),
    ],
)
def test_or_for_other_filters(
    loaded: QStashEmulator, api: Api, params: list[tuple[str, str]], model: dict[str, list[str]]
) -> None:
    expected = expected_ids(model)
    assert api.cancelled(params) == len(expected)
    assert cancelled_ids(loaded) == expected


@pytest.mark.parametrize(
    ("params", "model"),
    [
        ([("label", "red"), ("queueName", "q1")], {"label": ["red"], "queueName": ["q1"]}),
        ([("label", "red,blue"), ("queueName", "q2")], {"label": ["red", "blue"], "queueName": ["q2"]}),
        ([("host", "a.example.com"), ("path", "/x")], {"host": ["a.example.com"], "path": ["/x"]}),
        (
            [("callerIp", "10.0.0.1"), ("label", "red"), ("topicName", "g1")],
            {"callerIp": ["10.0.0.1"], "label": ["red"], "topicName": ["g1"]},
        ),
        ([("flowControlKey", "f1"), ("scheduleId", "s1")], {"flowControlKey": ["f1"], "scheduleId": ["s1"]}),
        ([("label", "yellow"), ("queueName", "q1")], {"label": ["yellow"], "queueName": ["q1"]}),
    ],
)
def test_and_across_filters(
    loaded: QStashEmulator, api: Api, params: list[tuple[str, str]], model: dict[str, list[str]]
) -> None:
    expected = expected_ids(model)
    assert api.cancelled(params) == len(expected)
    assert cancelled_ids(loaded) == expected


def test_filters_and_dates_combined(loaded: QStashEmulator, api: Api) -> None:
    params = [("label", "red"), ("fromDate", str(T0 + 1)), ("toDate", str(T0 + 5000))]
    expected = expected_ids({"label": ["red"]}, T0 + 1, T0 + 5000)
    assert expected == {"m2", "m5"}
    assert api.cancelled(params) == 2
    assert cancelled_ids(loaded) == expected


@pytest.mark.parametrize("form", ["comma", "repeated"])
def test_message_ids_override_other_filters(loaded: QStashEmulator, api: Api, form: str) -> None:
    ids = [("messageIds", "m0,m1")] if form == "comma" else [("messageIds", "m0"), ("messageIds", "m1")]
    # label=green matches neither m0 nor m1, and the dates exclude both: all ignored
    params = [*ids, ("label", "green"), ("queueName", "q3"), ("fromDate", str(T0 + 10_000))]
    assert api.cancelled(params) == 2
    assert cancelled_ids(loaded) == {"m0", "m1"}


def test_message_ids_unknown_and_already_cancelled_are_not_counted(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"messageIds": "m3"}) == 1
    assert api.cancelled({"messageIds": "m3,m4,nope"}) == 1
    assert cancelled_ids(loaded) == {"m3", "m4"}


def test_message_ids_with_count_cancels_oldest(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"messageIds": "m6,m2,m4", "count": 2}) == 2
    assert cancelled_ids(loaded) == {"m2", "m4"}


def test_dates_are_inclusive(loaded: QStashEmulator, api: Api) -> None:
    # m1 is exactly at fromDate, m4 exactly at toDate: both in; m0 and m5 are outside
    assert api.cancelled({"fromDate": T0 + 1000, "toDate": T0 + 4000}) == 4
    assert cancelled_ids(loaded) == {"m1", "m2", "m3", "m4"}


def test_one_millisecond_outside_the_bounds_is_excluded(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"fromDate": T0 + 1001, "toDate": T0 + 3999}) == 2
    assert cancelled_ids(loaded) == {"m2", "m3"}


def test_from_date_alone_and_to_date_alone(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"toDate": T0 + 1000}) == 2
    assert cancelled_ids(loaded) == {"m0", "m1"}
    assert api.cancelled({"fromDate": T0 + 6000}) == 1
    assert cancelled_ids(loaded) == {"m0", "m1", "m6"}


def test_from_date_after_to_date_cancels_nothing(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"fromDate": T0 + 4000, "toDate": T0 + 1000}) == 0
    assert loaded.held_ids() == ALL_IDS


def test_no_filter_cancels_everything(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled() == len(DATASET)
    assert loaded.held_ids() == set()
    assert loaded.counts() == {"held": 0, "cancelled": len(DATASET)}
    assert api.cancelled() == 0


def test_empty_filter_value_counts_as_absent(loaded: QStashEmulator, api: Api) -> None:
    """Pessimistic on purpose: ``?label=`` is no filter at all, so it cancels everything."""
    assert api.cancelled({"label": ""}) == len(DATASET)


def test_count_without_filters_cancels_exactly_count_oldest_first(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"count": 3}) == 3
    assert cancelled_ids(loaded) == {"m0", "m1", "m2"}
    assert api.cancelled({"count": 3}) == 3
    assert cancelled_ids(loaded) == {"m0", "m1", "m2", "m3", "m4", "m5"}
    assert api.cancelled({"count": 3}) == 1


def test_count_with_filter_cancels_oldest_matching(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"label": "red,blue", "count": 2}) == 2
    assert cancelled_ids(loaded) == {"m0", "m1"}


def test_count_500_is_accepted(emu: QStashEmulator, api: Api) -> None:
    emu.seed(600, seed=1)
    assert api.cancelled({"count": 500}) == 500
    assert emu.counts() == {"held": 100, "cancelled": 500}


@pytest.mark.parametrize(
    "count", ["0", "501", "abc", "-1", "1.5", "", "10000000000000000000000", "5_0", "+5", "\u0665", "1e2", "0x10"]
)
def test_invalid_count_is_refused_and_nothing_cancelled(loaded: QStashEmulator, api: Api, count: str) -> None:
    response = api.cancel({"count": count, "label": "red"})
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body["error"], str) and "count" in body["error"]
    assert loaded.held_ids() == ALL_IDS


@pytest.mark.parametrize("name", ["fromDate", "toDate"])
@pytest.mark.parametrize("value", ["yesterday", "1.5", "2024-01-01", ""])
def test_non_integer_dates_are_refused(loaded: QStashEmulator, api: Api, name: str, value: str) -> None:
    response = api.cancel({name: value})
    assert response.status_code == 400
    assert name in response.json()["error"]
    assert loaded.held_ids() == ALL_IDS


@pytest.mark.parametrize("name", ["fromDate", "toDate"])
@pytest.mark.parametrize("value", ["1" * 30, "-" + "9" * 20, "9223372036854775808", "1_700_000_000_000"])
def test_dates_outside_int64_or_not_plain_digits_answer_400_not_500(
    loaded: QStashEmulator, api: Api, name: str, value: str
) -> None:
    response = api.cancel({name: value})
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]
    assert loaded.held_ids() == ALL_IDS


def test_largest_int64_date_is_accepted(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"toDate": str(2**63 - 1), "label": "red"}) == 3


def test_repeating_a_cancel_is_safe(loaded: QStashEmulator, api: Api) -> None:
    assert api.cancelled({"queueName": "q1"}) == 2
    assert api.cancelled({"queueName": "q1"}) == 0


def test_single_delete_then_bulk_does_not_count_it_again(loaded: QStashEmulator, api: Api) -> None:
    assert api.request("DELETE", "/v2/messages/m0").status_code == 202
    assert api.cancelled({"label": "red"}) == 2  # m2, m5


@pytest.mark.parametrize(
    "params",
    [
        {"label": "label-3", "count": 500},
        {"label": "label-1,label-7", "count": 250},
        {"label": "label-2", "queueName": "queue-1,queue-3"},
        {"queueName": "queue-0", "host": "api.example.com", "count": 100},
        {"scheduleId": "scd-01,scd-02", "flowControlKey": "fck-1"},
        {"host": "worker.example.net:8443", "path": "/webhook,/", "count": 40},
        {"topicName": "group-1", "callerIp": "203.0.113.2,203.0.113.3"},
        {"url": "https://hooks.example.com/jobs/sync", "label": "label-0,label-9"},
        {"count": 77},
    ],
)
def test_seeded_store_matches_a_naive_model(emu: QStashEmulator, api: Api, params: dict[str, Any]) -> None:
    """The indexed selection agrees with a plain Python filter on a realistic distribution."""
    now = 1_800_000_000_000
    emu.seed(3000, seed=7, now=now)
    window = {"fromDate": now - 20 * 86_400_000, "toDate": now - 5 * 86_400_000}
    for with_window in (False, True):
        query = dict(params, **window) if with_window else dict(params)
        held = emu.messages("held")

        def keep(message: dict[str, Any], query: dict[str, Any] = query) -> bool:
            for name, raw in query.items():
                if name == "count":
                    continue
                if name == "fromDate":
                    if message["createdAt"] < raw:
                        return False
                    continue
                if name == "toDate":
                    if message["createdAt"] > raw:
                        return False
                    continue
                values = set(str(raw).split(","))
                key = {"callerIp": "callerIP"}.get(name, name)
                have = set(message.get("labels", [])) if name == "label" else {message.get(key)}
                if not have & values:
                    return False
            return True

        matching = sorted((m for m in held if keep(m)), key=lambda m: (m["createdAt"], m["messageId"]))
        count = query.get("count")
        before = emu.held_ids()
        got = api.cancelled(query)
        gone = before - emu.held_ids()
        if count is None:
            assert gone == {m["messageId"] for m in matching}
        else:
            assert got == min(count, len(matching))
            # oldest first: everything cancelled is at least as old as anything left matching
            left = [m["createdAt"] for m in matching if m["messageId"] not in gone]
            taken = [m["createdAt"] for m in matching if m["messageId"] in gone]
            assert not left or not taken or max(taken) <= min(left)
        assert got == len(gone)
