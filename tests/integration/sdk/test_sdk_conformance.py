"""The official QStash SDKs (qstash 3.4.0 from PyPI, @upstash/qstash 2.12.0 from npm) and the provider's
own hook, as clients of the emulator in both generations: every message and DLQ operation they offer
(:mod:`tests.integration.sdk.cases`), each asserting the exact effect on the store.

The JavaScript side runs in ONE node process per generation (``js/run_cases.mjs`` gets every case on
stdin and prints every result); ``make sdk-js`` (part of ``make test``) installs its locked
dependencies with ``npm ci --prefix tests/integration/sdk/js``. The run writes the README table (operation x SDK
x generation) to ``test-artifacts/sdk-conformance.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qstash
import requests

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.protocol.messages import ActionStarted, BatchCancelled
from qstash_emulator import QStashEmulator
from tests.conftest import connection_json
from tests.integration.sdk.cases import CASES, NOT_OFFERED, SDK_NAMES, SETUP, After, Case

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "sdk-conformance-token"
GENERATIONS = ("legacy", "actions")
JS_DIR = Path(__file__).parent / "js"
ARTIFACT = Path(__file__).resolve().parents[3] / "test-artifacts" / "sdk-conformance.md"

#: Outcome of every (case id, generation): "pass" or "fail: ...".
OUTCOMES: dict[tuple[str, str], str] = {}


def _py_calls() -> dict[str, Callable[[qstash.QStash], Any]]:
    """The qstash-py call of each ``py`` case, returning a JSON-able result."""

    def ids(items: Any) -> Any:
        return [{"messageId": r.message_id} for r in items] if isinstance(items, list) else items

    def one(r: Any) -> Any:
        return ids(r) if isinstance(r, list) else {"messageId": r.message_id}

    def batch(items: Any) -> Any:
        return [ids(r) if isinstance(r, list) else {"messageId": r.message_id} for r in items]

    url = "https://n.example/"
    return {
        'message.publish(url=..., delay="10s")': lambda c: one(c.message.publish(url=url, body="hi", delay="10s")),
        "message.publish_json(url=...)": lambda c: one(c.message.publish_json(url=url, body={"a": 1})),
        'message.publish(url_group="grp")': lambda c: one(c.message.publish(url_group="grp", body="hi")),
        'message.publish(url_group="nogroup")': lambda c: one(c.message.publish(url_group="nogroup", body="hi")),
        'message.enqueue(queue="q1", url=...)': lambda c: one(c.message.enqueue(queue="q1", url=url, body="hi")),
        'message.enqueue_json(queue="q1", url=...)': lambda c: one(
            c.message.enqueue_json(queue="q1", url=url, body={"a": 1})
        ),
        "message.batch([...])": lambda c: batch(
            c.message.batch([{"url": url, "body": "1"}, {"url_group": "grp", "body": "2"}])
        ),
        "message.batch_json([...])": lambda c: batch(c.message.batch_json([{"url": url, "body": {"a": 1}}])),
        'message.get("m0")': lambda c: {"messageId": (m := c.message.get("m0")).message_id, "notBefore": m.not_before},
        'message.cancel("m0")': lambda c: c.message.cancel("m0"),
        'message.cancel_many(["m0", "m1"])': lambda c: c.message.cancel_many(["m0", "m1"]),
        "message.cancel_all()": lambda c: c.message.cancel_all(),
        "dlq.list()": lambda c: [m.dlq_id for m in c.dlq.list().messages],
        'dlq.list(filter={"label": "x"})': lambda c: [m.dlq_id for m in c.dlq.list(filter={"label": "x"}).messages],
        'dlq.list(filter={"response_status": 404})': lambda c: [
            m.dlq_id for m in c.dlq.list(filter={"response_status": 404}).messages
        ],
        'dlq.get("d0")': lambda c: {"dlqId": (e := c.dlq.get("d0")).dlq_id, "notBefore": e.not_before},
        'dlq.delete("d0")': lambda c: c.dlq.delete("d0"),
        'dlq.delete_many(["d1"])': lambda c: c.dlq.delete_many(["d1"]),
    }


def _hook_calls(wait: Callable[[], None]) -> dict[str, Callable[[QStashHook], Any]]:
    """The provider hook's call of each ``hook`` case, returning a JSON-able result."""

    def bulk(answer: Any) -> Any:
        if isinstance(answer, BatchCancelled):
            return {"cancelled": answer.cancelled}
        assert isinstance(answer, ActionStarted)
        wait()
        return {"action": True}

    return {
        'cancel_message("m0")': lambda h: h.cancel_message("m0") and None,
        'bulk_cancel(message_ids=["m0", "m1"])': lambda h: h.bulk_cancel(message_ids=["m0", "m1"]).cancelled,
        'bulk_cancel(labels="a")': lambda h: bulk(h.bulk_cancel(labels="a")),
        'list_dlq(labels="x")': lambda h: [m["dlqId"] for m in h.list_dlq(labels="x").messages],
        'delete_dlq_message("d0")': lambda h: h.delete_dlq_message("d0"),
        'dlq_delete(dlq_ids=["d1"])': lambda h: h.dlq_delete(dlq_ids=["d1"])["deleted"],
        'dlq_delete(labels="x")': lambda h: h.dlq_delete(labels="x")["deleted"],
        'dlq_retry(dlq_ids=["d0", "d3"])': lambda h: h.dlq_retry(dlq_ids=["d0", "d3"])["retried"],
        'dlq_retry(labels="y")': lambda h: h.dlq_retry(labels="y")["retried"],
        "bulk_cancel(cancel_all=True)": lambda h: bulk(h.bulk_cancel(cancel_all=True)),
        "list_dlq()": lambda h: [m["dlqId"] for m in h.list_dlq().messages],
        "list_dlq(response_statuses=[404])": lambda h: [
            m["dlqId"] for m in h.list_dlq(response_statuses=[404]).messages
        ],
        "dlq_delete(delete_all=True)": lambda h: h.dlq_delete(delete_all=True)["deleted"],
        "dlq_retry(retry_all=True)": lambda h: h.dlq_retry(retry_all=True)["retried"],
    }


def _async_hook_calls(wait: Callable[[], None]) -> dict[str, Callable[[QStashAsyncHook], Awaitable[Any]]]:
    """The async hook's call of each ``async-hook`` case (the deferrable path), returning a JSON-able result."""

    def bulk(answer: Any) -> Any:
        if isinstance(answer, BatchCancelled):
            return {"cancelled": answer.cancelled}
        assert isinstance(answer, ActionStarted)
        wait()
        return {"action": True}

    async def cancel_message(h: QStashAsyncHook) -> Any:
        await h.cancel_message("m0")

    async def by_ids(h: QStashAsyncHook) -> Any:
        answer = await h.bulk_cancel_by_filter(BulkCancelFilter(message_ids=("m0", "m1")))
        return answer.cancelled if isinstance(answer, BatchCancelled) else answer

    async def by_label(h: QStashAsyncHook) -> Any:
        return bulk(await h.bulk_cancel_by_filter(BulkCancelFilter(labels=("a",))))

    async def listed(h: QStashAsyncHook) -> Any:
        return [m["dlqId"] for m in (await h.list_dlq(labels="x")).messages]

    async def delete_one(h: QStashAsyncHook) -> Any:
        return await h.delete_dlq_message("d0")

    async def delete_ids(h: QStashAsyncHook) -> Any:
        return (await h.dlq_delete(dlq_ids=["d1"]))["deleted"]

    async def delete_label(h: QStashAsyncHook) -> Any:
        return (await h.dlq_delete(labels="x"))["deleted"]

    async def retry_ids(h: QStashAsyncHook) -> Any:
        return (await h.dlq_retry(dlq_ids=["d0", "d3"]))["retried"]

    async def retry_label(h: QStashAsyncHook) -> Any:
        return (await h.dlq_retry(labels="y"))["retried"]

    return {
        'cancel_message("m0")': cancel_message,
        'bulk_cancel_by_filter(message_ids=("m0", "m1"))': by_ids,
        'bulk_cancel_by_filter(labels=("a",))': by_label,
        'list_dlq(labels="x")': listed,
        'delete_dlq_message("d0")': delete_one,
        'dlq_delete(dlq_ids=["d1"])': delete_ids,
        'dlq_delete(labels="x")': delete_label,
        'dlq_retry(dlq_ids=["d0", "d3"])': retry_ids,
        'dlq_retry(labels="y")': retry_label,
    }


def _set_up(emu: QStashEmulator) -> None:
    emu.reset()
    emu.add_messages(SETUP["messages"])
    emu.add_dlq(SETUP["dlq"])
    for name, urls in SETUP["groups"].items():
        # Through the API, as an SDK would; an emulator without URL groups lets the cases that need
        # one fail on their own (their check), not the whole run.
        requests.post(
            f"{emu.base_url}/v2/topics/{name}/endpoints",
            json={"endpoints": [{"url": url} for url in urls]},
            headers=emu.auth_headers,
            timeout=10,
            allow_redirects=False,
        )


def _after(emu: QStashEmulator) -> After:
    return After(messages=emu.messages("all"), dlq=emu.dlq_entries(), actions=emu.bulk_actions())


def _judge(case: Case, generation: str, result: Any, error: str | None, after: After) -> str:
    try:
        case.check(result, error, after, generation)
    except (AssertionError, LookupError, TypeError) as exc:  # a field missing from the answer is a failure too
        return f"fail: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    return "pass"


@pytest.fixture(scope="module", params=GENERATIONS)
def generation(request: pytest.FixtureRequest) -> Iterator[tuple[str, QStashEmulator]]:
    with QStashEmulator(token=TOKEN, bulk_cancel=request.param, action_rate=5000, sync_wait=10) as emu:
        yield request.param, emu


@pytest.fixture(scope="module", autouse=True)
def write_table() -> Iterator[None]:
    yield
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(render_table(OUTCOMES))


def _npm_ready() -> None:
    if not (JS_DIR / "node_modules" / "@upstash" / "qstash").is_dir():
        if shutil.which("npm") is None:
            pytest.fail("node and npm are required: install them, then run `make sdk-js`")
        subprocess.run(["npm", "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"], check=True, timeout=300)


def run_js(emu: QStashEmulator, cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Every JS case in one node process; their results by case id."""
    _npm_ready()
    plan = {
        "baseUrl": emu.base_url,
        "token": TOKEN,
        "cases": [{"id": c.id, "setup": SETUP, "call": c.code} for c in cases],
    }
    env = {**os.environ, "UPSTASH_DISABLE_TELEMETRY": "1", "QSTASH_DEV": "false"}
    done = subprocess.run(
        ["node", str(JS_DIR / "run_cases.mjs")],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=JS_DIR,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {r["id"]: r for r in json.loads(done.stdout)}


def test_qstash_py(generation: tuple[str, QStashEmulator]) -> None:
    name, emu = generation
    client = qstash.QStash(TOKEN, base_url=emu.base_url, retry=False)
    calls = _py_calls()
    failures = []
    for case in [c for c in CASES if c.sdk == "py"]:
        _set_up(emu)
        try:
            result, error = calls[case.call](client), None
        except Exception as exc:  # the SDK's own error (QStashError, KeyError on a field it needs...)
            result, error = None, f"{type(exc).__name__}: {exc}"
        emu.wait_actions_idle(timeout=30)
        OUTCOMES[case.id, name] = outcome = _judge(case, name, result, error, _after(emu))
        if outcome != "pass":
            failures.append(f"{case.call}: {outcome}")
    assert not failures, "\n".join(failures)


def test_qstash_js(generation: tuple[str, QStashEmulator]) -> None:
    name, emu = generation
    cases = [c for c in CASES if c.sdk == "js"]
    results = run_js(emu, cases)
    failures = []
    for case in cases:
        r = results[case.id]
        after = After(**r["after"])
        OUTCOMES[case.id, name] = outcome = _judge(case, name, r["result"], r["error"], after)
        if outcome != "pass":
            failures.append(f"{case.call}: {outcome}")
    assert not failures, "\n".join(failures)


def test_provider_hook(generation: tuple[str, QStashEmulator], monkeypatch: pytest.MonkeyPatch) -> None:
    name, emu = generation
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_SDK", connection_json(host=emu.base_url, token=TOKEN))
    hook = QStashHook(qstash_conn_id="qstash_sdk")
    calls = _hook_calls(lambda: emu.wait_actions_idle(timeout=30))
    failures = []
    for case in [c for c in CASES if c.sdk == "hook"]:
        _set_up(emu)
        try:
            result, error = calls[case.call](hook), None
        except Exception as exc:  # the provider's error, recorded as the case's failure
            result, error = None, f"{type(exc).__name__}: {exc}"
        emu.wait_actions_idle(timeout=30)
        OUTCOMES[case.id, name] = outcome = _judge(case, name, result, error, _after(emu))
        if outcome != "pass":
            failures.append(f"{case.call}: {outcome}")
    assert not failures, "\n".join(failures)


def test_async_provider_hook(generation: tuple[str, QStashEmulator], monkeypatch: pytest.MonkeyPatch) -> None:
    name, emu = generation
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_SDK", connection_json(host=emu.base_url, token=TOKEN))
    calls = _async_hook_calls(lambda: emu.wait_actions_idle(timeout=30))
    failures = []

    async def run(call: Callable[[QStashAsyncHook], Awaitable[Any]]) -> Any:
        hook = QStashAsyncHook(qstash_conn_id="qstash_sdk")
        try:
            return await call(hook)
        finally:
            await hook.aclose()

    for case in [c for c in CASES if c.sdk == "async-hook"]:
        _set_up(emu)
        try:
            result, error = asyncio.run(run(calls[case.call])), None
        except Exception as exc:  # the provider's error, recorded as the case's failure
            result, error = None, f"{type(exc).__name__}: {exc}"
        emu.wait_actions_idle(timeout=30)
        OUTCOMES[case.id, name] = outcome = _judge(case, name, result, error, _after(emu))
        if outcome != "pass":
            failures.append(f"{case.call}: {outcome}")
    assert not failures, "\n".join(failures)


def test_every_case_has_a_call() -> None:
    wait: Callable[[], None] = lambda: None  # noqa: E731
    implemented = {"py": _py_calls(), "hook": _hook_calls(wait), "async-hook": _async_hook_calls(wait)}
    for case in CASES:
        assert case.sdk in SDK_NAMES
        if case.sdk == "js":
            assert case.code.startswith("(c) =>")
        else:
            assert case.call in implemented[case.sdk]
    for sdk, calls in implemented.items():
        assert set(calls) == {c.call for c in CASES if c.sdk == sdk}


def render_table(outcomes: dict[tuple[str, str], str]) -> str:
    """The README table: one row per operation, per SDK the call and its outcome in each generation."""
    operations = list(dict.fromkeys(c.operation for c in CASES))
    sdks = list(SDK_NAMES)
    head = "| operation | " + " | ".join(SDK_NAMES[s] for s in sdks) + " |"
    lines = [head, "|---" * (len(sdks) + 1) + "|"]
    for op in operations:
        cells = []
        for sdk in sdks:
            cases = [c for c in CASES if c.operation == op and c.sdk == sdk]
            if not cases:
                cells.append("not offered")
                continue
            parts = []
            for c in cases:
                verdicts = []
                for gen in GENERATIONS:
                    got = outcomes.get((c.id, gen), "not run")
                    verdicts.append(f"{gen}: {got.split(':')[0] if got.startswith('fail') else got}")
                parts.append(f"`{c.call}` ({', '.join(verdicts)})")
            cells.append("<br>".join(parts))
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    notes = "\n".join(f"- {text}" for text in NOT_OFFERED.values())
    return "\n".join(lines) + "\n\nNot offered:\n" + notes + "\n"
