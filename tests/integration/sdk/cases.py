"""The conformance cases: every message and DLQ operation each official SDK offers, and the provider's own
hook calls, each with the exact effect it must have on the emulator's store.

One store set-up serves every case (:data:`SETUP`): 7 held messages ``m0``..``m6`` (``m0``..``m3``
label ``a``, ``m4``..``m6`` label ``b``), 4 DLQ entries ``d0``..``d3`` (``d0``, ``d1`` label ``x``
at ``https://x.example/``, ``d2``, ``d3`` label ``y``; status 500 for ``d0``, ``d2``, 404 for
``d1``, ``d3``) and a URL group ``grp`` of two endpoints. A check gets the call's result (JSON-able),
its error text (``None`` when it succeeded) and the store after it (:class:`After`), and raises
``AssertionError`` when anything outside what the call named was touched or a count is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MESSAGE_IDS = [f"m{i}" for i in range(7)]
LABEL_A = set(MESSAGE_IDS[:4])
DLQ_IDS = [f"d{i}" for i in range(4)]
GROUP_URLS = ["https://g1.example/hook", "https://g2.example/hook"]

SETUP: dict[str, Any] = {
    "messages": [
        {"messageId": mid, "url": f"https://e.example/{i}", "labels": ["a" if i < 4 else "b"], "body": f"body-{mid}"}
        for i, mid in enumerate(MESSAGE_IDS)
    ],
    "dlq": [
        {
            "dlqId": did,
            "messageId": f"orig-{did}",
            "url": "https://x.example/" if i < 2 else "https://y.example/",
            "labels": ["x" if i < 2 else "y"],
            "responseStatus": 500 if i % 2 == 0 else 404,
            "body": f"body-{did}",
            "createdAt": 1_700_000_000_000 + i,
        }
        for i, did in enumerate(DLQ_IDS)
    ],
    "groups": {"grp": GROUP_URLS},
}


@dataclass(frozen=True)
class After:
    """The store after a call."""

    messages: list[dict[str, Any]]
    dlq: list[dict[str, Any]]
    actions: list[dict[str, Any]]

    @property
    def held(self) -> set[str]:
        return {m["messageId"] for m in self.messages if m["state"] == "held"}

    @property
    def cancelled(self) -> set[str]:
        return {m["messageId"] for m in self.messages if m["state"] == "cancelled"}

    @property
    def new(self) -> list[dict[str, Any]]:
        """Held messages the set-up did not create, in creation order."""
        return [m for m in self.messages if m["messageId"] not in MESSAGE_IDS]

    @property
    def dlq_ids(self) -> set[str]:
        return {e["dlqId"] for e in self.dlq}


Check = Callable[[Any, "str | None", After, str], None]


@dataclass(frozen=True)
class Case:
    """One SDK call.

    :param operation: the row of the README table (what the call does).
    :param sdk: ``py`` (qstash 3.4.0), ``js`` (@upstash/qstash 2.12.0), ``hook`` or ``async-hook`` (the
        provider's :class:`QStashHook` and :class:`QStashAsyncHook`).
    :param call: the call as the SDK spells it (the table cell).
    :param code: for ``js``, an arrow function of the client (evaluated by ``js/run_cases.mjs``).
    :param check: ``check(result, error, after, generation)``.
    :param generations: where the call exists (``legacy``: an older server without today's routes).
    """

    operation: str
    sdk: str
    call: str
    check: Check
    code: str = ""
    generations: tuple[str, ...] = field(default=("legacy", "actions"))

    @property
    def id(self) -> str:
        return f"{self.sdk}:{self.call}"


# -- checks ----------------------------------------------------------------------------------------


def ok(error: str | None) -> None:
    assert error is None, f"the SDK raised: {error}"


def untouched_dlq(after: After) -> None:
    assert after.dlq_ids == set(DLQ_IDS), f"DLQ touched: {sorted(after.dlq_ids)}"


def untouched_messages(after: After) -> None:
    assert after.held == set(MESSAGE_IDS) and not after.cancelled, "messages touched"


def published(n: int, **fields: Any) -> Check:
    def check(result: Any, error: str | None, after: After, generation: str) -> None:
        ok(error)
        assert len(after.new) == n, f"{len(after.new)} messages created, expected {n}"
        for message in after.new:
            for key, value in fields.items():
                got = message.get(key)
                if key == "body" and value == J:  # the SDKs serialise JSON each their way
                    got, value = json.loads(got), json.loads(value)
                assert got == value, f"{key}={got!r}, expected {value!r}"
            assert isinstance(message["notBefore"], int)
        ids = result if isinstance(result, list) else [result]
        flat = [i for item in ids for i in (item if isinstance(item, list) else [item])]
        assert sorted(x["messageId"] for x in flat) == sorted(m["messageId"] for m in after.new)
        assert after.held >= set(MESSAGE_IDS) and not after.cancelled
        untouched_dlq(after)

    return check


def delayed(result: Any, error: str | None, after: After, generation: str) -> None:
    published(1)(result, error, after, generation)
    (message,) = after.new
    assert message["notBefore"] - message["createdAt"] == 10_000, message


def refused_unknown_group(result: Any, error: str | None, after: After, generation: str) -> None:
    # qstash-py puts the status in its error text, qstash-js only the answer's error text
    assert error is not None and ("404" in error or "not found" in error), f"expected a 404: {result!r} / {error!r}"
    assert not after.new
    untouched_messages(after)


def got_message(result: Any, error: str | None, after: After, generation: str) -> None:
    ok(error)
    assert result["messageId"] == "m0" and isinstance(result["notBefore"], int)
    untouched_messages(after)
    untouched_dlq(after)


def cancelled(ids: set[str], answer: int | None) -> Check:
    def check(result: Any, error: str | None, after: After, generation: str) -> None:
        ok(error)
        assert after.cancelled == ids, f"cancelled {sorted(after.cancelled)}, expected {sorted(ids)}"
        assert after.held == set(MESSAGE_IDS) - ids
        if answer is not None:
            assert result == answer, f"answer {result!r}, expected {answer}"
        untouched_dlq(after)

    return check


def listed(ids: set[str]) -> Check:
    def check(result: Any, error: str | None, after: After, generation: str) -> None:
        ok(error)
        assert set(result) == ids, f"listed {sorted(result)}, expected {sorted(ids)}"
        untouched_dlq(after)
        untouched_messages(after)

    return check


def got_dlq(result: Any, error: str | None, after: After, generation: str) -> None:
    ok(error)
    assert result["dlqId"] == "d0" and isinstance(result["notBefore"], int)
    untouched_dlq(after)


def deleted(ids: set[str], answer: int | None) -> Check:
    def check(result: Any, error: str | None, after: After, generation: str) -> None:
        ok(error)
        assert after.dlq_ids == set(DLQ_IDS) - ids, f"DLQ left {sorted(after.dlq_ids)}"
        if answer is not None:
            assert result == answer, f"answer {result!r}, expected {answer}"
        untouched_messages(after)

    return check


def retried(ids: set[str], answer: int | None) -> Check:
    def check(result: Any, error: str | None, after: After, generation: str) -> None:
        ok(error)
        assert after.dlq_ids == set(DLQ_IDS) - ids, f"DLQ left {sorted(after.dlq_ids)}"
        assert sorted(m["body"] for m in after.new) == sorted(f"body-{i}" for i in ids)
        if answer is not None:
            assert result == answer, f"answer {result!r}, expected {answer}"
        assert after.held >= set(MESSAGE_IDS) and not after.cancelled

    return check


def hook_bulk_filter(result: Any, error: str | None, after: After, generation: str) -> None:
    cancelled(LABEL_A, None)(result, error, after, generation)
    # legacy: a synchronous batch; actions: the count, or a background action (followed by the test)
    assert result in ([{"cancelled": 4}] if generation == "legacy" else [{"cancelled": 4}, {"action": True}]), result


def hook_bulk_all(result: Any, error: str | None, after: After, generation: str) -> None:
    cancelled(set(MESSAGE_IDS), None)(result, error, after, generation)
    assert result in ([{"cancelled": 7}] if generation == "legacy" else [{"cancelled": 7}, {"action": True}]), result


# -- the cases ------------------------------------------------------------------------------------------

J = '{"a": 1}'

CASES: list[Case] = [
    # messages: create (they touch the store: the effect is exactly the new messages)
    Case("publish to a URL (Upstash-Delay)", "py", 'message.publish(url=..., delay="10s")', delayed),
    Case(
        "publish to a URL (Upstash-Delay)",
        "js",
        "publish({url, delay: 10})",
        delayed,
        '(c) => c.publish({url: "https://n.example/", body: "hi", delay: 10})',
    ),
    Case("publish JSON", "py", "message.publish_json(url=...)", published(1, body=J)),
    Case(
        "publish JSON",
        "js",
        "publishJSON({url})",
        published(1, body=J),
        '(c) => c.publishJSON({url: "https://n.example/", body: {a: 1}}).then((r) => r)',
    ),
    Case("publish to a URL group", "py", 'message.publish(url_group="grp")', published(2, topicName="grp")),
    Case(
        "publish to a URL group",
        "js",
        'publish({urlGroup: "grp"})',
        published(2, topicName="grp"),
        '(c) => c.publish({urlGroup: "grp", body: "hi"})',
    ),
    Case("publish to an unknown URL group", "py", 'message.publish(url_group="nogroup")', refused_unknown_group),
    Case(
        "publish to an unknown URL group",
        "js",
        'publish({urlGroup: "nogroup"})',
        refused_unknown_group,
        '(c) => c.publish({urlGroup: "nogroup", body: "hi"})',
    ),
    Case("enqueue", "py", 'message.enqueue(queue="q1", url=...)', published(1, queueName="q1")),
    Case(
        "enqueue",
        "js",
        'queue({queueName: "q1"}).enqueue({url})',
        published(1, queueName="q1"),
        '(c) => c.queue({queueName: "q1"}).enqueue({url: "https://n.example/", body: "hi"})',
    ),
    Case("enqueue JSON", "py", 'message.enqueue_json(queue="q1", url=...)', published(1, queueName="q1", body=J)),
    Case(
        "enqueue JSON",
        "js",
        'queue({queueName: "q1"}).enqueueJSON({url})',
        published(1, queueName="q1", body=J),
        '(c) => c.queue({queueName: "q1"}).enqueueJSON({url: "https://n.example/", body: {a: 1}})',
    ),
    Case("batch (a URL and a URL group)", "py", "message.batch([...])", published(3)),
    Case(
        "batch (a URL and a URL group)",
        "js",
        "batch([...])",
        published(3),
        '(c) => c.batch([{url: "https://n.example/", body: "1"}, {urlGroup: "grp", body: "2"}])',
    ),
    Case("batch JSON", "py", "message.batch_json([...])", published(1, body=J)),
    Case(
        "batch JSON",
        "js",
        "batchJSON([...])",
        published(1, body=J),
        '(c) => c.batchJSON([{url: "https://n.example/", body: {a: 1}}])',
    ),
    # messages: read and cancel
    Case("get a message", "py", 'message.get("m0")', got_message),
    Case("get a message", "js", 'messages.get("m0")', got_message, '(c) => c.messages.get("m0")'),
    Case("cancel one message", "py", 'message.cancel("m0")', cancelled({"m0"}, None)),
    Case(
        "cancel one message",
        "js",
        'messages.cancel("m0")',
        cancelled({"m0"}, 1),
        '(c) => c.messages.cancel("m0").then((r) => r.cancelled)',
    ),
    Case(
        "cancel one message",
        "js",
        'messages.delete("m0") (deprecated)',
        cancelled({"m0"}, None),
        '(c) => c.messages.delete("m0")',
    ),
    Case("cancel one message", "hook", 'cancel_message("m0")', cancelled({"m0"}, None)),
    Case("cancel by ids", "py", 'message.cancel_many(["m0", "m1"])', cancelled({"m0", "m1"}, 2)),
    Case(
        "cancel by ids",
        "js",
        'messages.cancel(["m0", "m1"])',
        cancelled({"m0", "m1"}, 2),
        '(c) => c.messages.cancel(["m0", "m1"]).then((r) => r.cancelled)',
    ),
    Case(
        "cancel by ids",
        "js",
        'messages.deleteMany(["m0", "m1"]) (deprecated)',
        cancelled({"m0", "m1"}, 2),
        '(c) => c.messages.deleteMany(["m0", "m1"])',
    ),
    Case("cancel by ids", "hook", 'bulk_cancel(message_ids=["m0", "m1"])', cancelled({"m0", "m1"}, 2)),
    Case(
        "cancel by filter",
        "js",
        'messages.cancel({filter: {label: "a"}})',
        cancelled(LABEL_A, 4),
        '(c) => c.messages.cancel({filter: {label: "a"}}).then((r) => r.cancelled)',
    ),
    Case("cancel by filter", "hook", 'bulk_cancel(labels="a")', hook_bulk_filter),
    Case("cancel all", "py", "message.cancel_all()", cancelled(set(MESSAGE_IDS), 7)),
    Case(
        "cancel all",
        "js",
        "messages.cancel({all: true})",
        cancelled(set(MESSAGE_IDS), 7),
        "(c) => c.messages.cancel({all: true}).then((r) => r.cancelled)",
    ),
    Case(
        "cancel all",
        "js",
        "messages.deleteAll() (deprecated)",
        cancelled(set(MESSAGE_IDS), 7),
        "(c) => c.messages.deleteAll()",
    ),
    # DLQ
    Case("list the DLQ", "py", "dlq.list()", listed(set(DLQ_IDS))),
    Case(
        "list the DLQ",
        "js",
        "dlq.listMessages()",
        listed(set(DLQ_IDS)),
        "(c) => c.dlq.listMessages().then((r) => r.messages.map((m) => m.dlqId))",
    ),
    Case("list the DLQ by filter", "py", 'dlq.list(filter={"label": "x"})', listed({"d0", "d1"})),
    Case(
        "list the DLQ by filter",
        "js",
        'dlq.listMessages({filter: {label: "x"}})',
        listed({"d0", "d1"}),
        '(c) => c.dlq.listMessages({filter: {label: "x"}}).then((r) => r.messages.map((m) => m.dlqId))',
    ),
    Case("list the DLQ by filter", "hook", 'list_dlq(labels="x")', listed({"d0", "d1"})),
    Case("list the DLQ by status", "py", 'dlq.list(filter={"response_status": 404})', listed({"d1", "d3"})),
    Case(
        "list the DLQ by status",
        "js",
        "dlq.listMessages({filter: {responseStatus: 404}})",
        listed({"d1", "d3"}),
        "(c) => c.dlq.listMessages({filter: {responseStatus: 404}}).then((r) => r.messages.map((m) => m.dlqId))",
    ),
    Case(
        "list the DLQ by ids",
        "js",
        'dlq.listMessages({dlqIds: ["d0", "d2"]})',
        listed({"d0", "d2"}),
        '(c) => c.dlq.listMessages({dlqIds: ["d0", "d2"]}).then((r) => r.messages.map((m) => m.dlqId))',
    ),
    Case("get a DLQ entry", "py", 'dlq.get("d0")', got_dlq),
    Case("delete one DLQ entry", "py", 'dlq.delete("d0")', deleted({"d0"}, None)),
    Case(
        "delete one DLQ entry",
        "js",
        'dlq.delete("d0")',
        deleted({"d0"}, 1),
        '(c) => c.dlq.delete("d0").then((r) => r.deleted)',
    ),
    Case("delete one DLQ entry", "hook", 'delete_dlq_message("d0")', deleted({"d0"}, None)),
    Case("delete DLQ entries by ids", "py", 'dlq.delete_many(["d1"])', deleted({"d1"}, 1)),
    Case(
        "delete DLQ entries by ids",
        "js",
        'dlq.delete(["d0", "d1"])',
        deleted({"d0", "d1"}, 2),
        '(c) => c.dlq.delete(["d0", "d1"]).then((r) => r.deleted)',
    ),
    Case(
        "delete DLQ entries by ids",
        "js",
        'dlq.deleteMany({dlqIds: ["d2"]}) (deprecated)',
        deleted({"d2"}, 1),
        '(c) => c.dlq.deleteMany({dlqIds: ["d2"]}).then((r) => r.deleted)',
    ),
    Case("delete DLQ entries by ids", "hook", 'dlq_delete(dlq_ids=["d1"])', deleted({"d1"}, 1)),
    Case(
        "delete DLQ entries by filter",
        "js",
        'dlq.delete({filter: {label: "x"}})',
        deleted({"d0", "d1"}, 2),
        '(c) => c.dlq.delete({filter: {label: "x"}}).then((r) => r.deleted)',
    ),
    Case("delete DLQ entries by filter", "hook", 'dlq_delete(labels="x")', deleted({"d0", "d1"}, 2)),
    Case(
        "delete every DLQ entry",
        "js",
        "dlq.delete({all: true})",
        deleted(set(DLQ_IDS), 4),
        "(c) => c.dlq.delete({all: true}).then((r) => r.deleted)",
    ),
    Case(
        "retry one DLQ entry",
        "js",
        'dlq.retry("d0")',
        retried({"d0"}, 1),
        '(c) => c.dlq.retry("d0").then((r) => r.responses.length)',
    ),
    Case(
        "retry DLQ entries by ids",
        "js",
        'dlq.retry(["d0", "d3"])',
        retried({"d0", "d3"}, 2),
        '(c) => c.dlq.retry(["d0", "d3"]).then((r) => r.responses.length)',
    ),
    Case("retry DLQ entries by ids", "hook", 'dlq_retry(dlq_ids=["d0", "d3"])', retried({"d0", "d3"}, 2)),
    Case(
        "retry DLQ entries by filter",
        "js",
        'dlq.retry({filter: {label: "y"}})',
        retried({"d2", "d3"}, 2),
        '(c) => c.dlq.retry({filter: {label: "y"}}).then((r) => r.responses.length)',
    ),
    Case("retry DLQ entries by filter", "hook", 'dlq_retry(labels="y")', retried({"d2", "d3"}, 2)),
    Case(
        "retry every DLQ entry",
        "js",
        "dlq.retry({all: true})",
        retried(set(DLQ_IDS), 4),
        "(c) => c.dlq.retry({all: true}).then((r) => r.responses.length)",
    ),
    # the provider's hook, the rest of what it offers, and its async twin (the deferrable path)
    Case("cancel all", "hook", "bulk_cancel(cancel_all=True)", hook_bulk_all),
    Case("list the DLQ", "hook", "list_dlq()", listed(set(DLQ_IDS))),
    Case("list the DLQ by status", "hook", "list_dlq(response_statuses=[404])", listed({"d1", "d3"})),
    Case("delete every DLQ entry", "hook", "dlq_delete(delete_all=True)", deleted(set(DLQ_IDS), 4)),
    Case("retry every DLQ entry", "hook", "dlq_retry(retry_all=True)", retried(set(DLQ_IDS), 4)),
    Case("cancel one message", "async-hook", 'cancel_message("m0")', cancelled({"m0"}, None)),
    Case("cancel by ids", "async-hook", 'bulk_cancel_by_filter(message_ids=("m0", "m1"))', cancelled({"m0", "m1"}, 2)),
    Case("cancel by filter", "async-hook", 'bulk_cancel_by_filter(labels=("a",))', hook_bulk_filter),
    Case("list the DLQ by filter", "async-hook", 'list_dlq(labels="x")', listed({"d0", "d1"})),
    Case("delete one DLQ entry", "async-hook", 'delete_dlq_message("d0")', deleted({"d0"}, None)),
    Case("delete DLQ entries by ids", "async-hook", 'dlq_delete(dlq_ids=["d1"])', deleted({"d1"}, 1)),
    Case("delete DLQ entries by filter", "async-hook", 'dlq_delete(labels="x")', deleted({"d0", "d1"}, 2)),
    Case("retry DLQ entries by ids", "async-hook", 'dlq_retry(dlq_ids=["d0", "d3"])', retried({"d0", "d3"}, 2)),
    Case("retry DLQ entries by filter", "async-hook", 'dlq_retry(labels="y")', retried({"d2", "d3"}, 2)),
]

#: What an SDK does not offer (the table says so rather than leaving the cell empty).
NOT_OFFERED: dict[str, str] = {
    "py": "qstash 3.4.0: DlqApi has get, list, delete, delete_many (no retry, no filter delete)",
    "js": "@upstash/qstash 2.12.0: DLQ has no get-one method",
    "hook": "the provider has no publish, get-one or DLQ-get call (it cancels, lists, deletes and retries); its "
    "DLQ list refuses dlq_ids (this run: the issue's item 1, another change)",
}

SDK_NAMES = {
    "py": "qstash 3.4.0 (PyPI)",
    "js": "@upstash/qstash 2.12.0 (npm)",
    "hook": "provider QStashHook",
    "async-hook": "provider QStashAsyncHook",
}
