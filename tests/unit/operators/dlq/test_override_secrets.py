"""
Issue 17 item 8: retry overrides that carry credentials are masked (``***`` in the XCom ``overrides`` and
the plan log line, registered with Airflow's secrets masker), and ``override_headers`` is no way around the
range checks of the typed overrides (``Upstash-Retries: 99999`` passed before). On the hooks (both
transports), the operator (sync) and the trigger (deferrable).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import DLQFilter
from airflow_qstash.inputs import retry_overrides, shown_overrides
from airflow_qstash.operators.dlq import QStashDLQRetryOperator
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from tests.doubles.fake_qstash import FakeDLQ
from tests.support.dlq_task import rendered, ti_context
from tests.support.task_logs import capture_task_logs

FORWARDED = "fwd-Cr3dential-7Hq2Lm9Xw4Vb"
#: Every kind of credential header the issue names, each with its own value.
CREDENTIALS = {
    "Upstash-Forward-Authorization": f"Bearer {FORWARDED}",
    "Upstash-Callback-Forward-Proxy-Authorization": "Basic cHJveHk6c2VjcmV0LXZhbHVl",
    "Upstash-Forward-Cookie": "session=ck-8Jd0Qw3Zr5Tn",
    "Upstash-Forward-X-Auth-Token": "tk-2Pv9Gx6Lm1Sa",
    "Upstash-Forward-X-Client-Secret": "sc-5Wn3Hb8Kd0Ye",
    "Upstash-Forward-X-Api-Key": "ak-7Rc4Nf1Tq9Zu",
    "Upstash-Forward-Stripe-Signature": "sg-3Mv6Yh2Jp8Lo",
}
PLAIN = {"Upstash-Callback": "https://cb.example/done", "Upstash-Flow-Control-Key": "tenant-a"}


def secret_values() -> list[str]:
    return [value.split(None, 1)[-1] for value in CREDENTIALS.values()]


def assert_no_credential(text: str) -> None:
    leaked = [value for value in secret_values() if value in text]
    assert not leaked, leaked


# --------------------------------------------------------------------------- typed headers


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"Upstash-Retries": "99999"}, r"override_headers\['Upstash-Retries'\] must be a whole number from 0 to 1000"),
        ({"upstash-retries": 1001}, "must be a whole number from 0 to 1000"),
        ({"Upstash-Retries": "-1"}, "must be a whole number"),
        ({"Upstash-Retries": "3.5"}, "must be a whole number"),
        ({"Upstash-Delay": "10y"}, r"override_headers\['Upstash-Delay'\] must be whole seconds >= 0"),
        ({"Upstash-Delay": "400d"}, "must be whole seconds >= 0 up to 31,536,000"),
        ({"Upstash-Delay": "-5s"}, "must be whole seconds"),
        ({"Upstash-Timeout": "0s"}, r"override_headers\['Upstash-Timeout'\] must be whole seconds > 0"),
        ({"Upstash-Timeout": "forever"}, "must be whole seconds > 0"),
        ({"Upstash-Method": "TRACE"}, "must be one of GET, POST, PUT, PATCH, DELETE"),
        ({"Upstash-Not-Before": "tomorrow"}, "must be Unix seconds"),
        ({"Upstash-Not-Before": "99999999999999"}, "must be Unix seconds"),
        ({"Upstash-Content-Based-Deduplication": "yes"}, "must be true or false"),
    ],
)
def test_override_headers_pass_the_typed_checks(headers: dict[str, Any], match: str):
    with pytest.raises(QStashInputError, match=match):
        retry_overrides(headers=headers, field_prefix="override_")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Upstash-Retries": " 7 "}, ("Upstash-Retries", "7")),
        ({"Upstash-Delay": "1d10h30m"}, ("Upstash-Delay", "124200s")),
        ({"Upstash-Delay": "90"}, ("Upstash-Delay", "90s")),
        ({"Upstash-Timeout": "2m"}, ("Upstash-Timeout", "120s")),
        ({"upstash-method": "put"}, ("upstash-method", "PUT")),
        ({"Upstash-Not-Before": 1_800_000_000}, ("Upstash-Not-Before", "1800000000")),
        ({"Upstash-Content-Based-Deduplication": "TRUE"}, ("Upstash-Content-Based-Deduplication", "true")),
    ],
)
def test_override_headers_are_sent_in_the_typed_form(headers: dict[str, Any], expected: tuple[str, str]):
    assert retry_overrides(headers=headers) == (expected,)


def test_the_typed_arguments_take_the_compound_form_too():
    assert retry_overrides(delay="1d10h30m", timeout="1h30m") == (
        ("Upstash-Delay", "124200s"),
        ("Upstash-Timeout", "5400s"),
    )


# --------------------------------------------------------------------------- credentials


def test_credentials_show_as_stars_and_are_registered_with_the_masker(monkeypatch):
    masked: list[str] = []
    monkeypatch.setattr("airflow.providers.common.compat.sdk.mask_secret", masked.append)
    headers = retry_overrides(headers={**CREDENTIALS, **PLAIN}, retries=0)
    assert dict(headers) == {"Upstash-Retries": "0", **CREDENTIALS, **PLAIN}  # sent as given
    shown = shown_overrides(headers)
    assert shown == {"Upstash-Retries": "0", **dict.fromkeys(CREDENTIALS, "***"), **PLAIN}
    assert set(secret_values()) <= set(masked)
    assert not set(PLAIN.values()) & set(masked)


@pytest.fixture
def credential_headers() -> tuple[tuple[str, str], ...]:
    return retry_overrides(headers={**CREDENTIALS, **PLAIN})


def test_both_hooks_report_stars_and_send_the_values(call_hook, fake: FakeDLQ, credential_headers):
    fake.add(2, "a")
    summary = call_hook("dlq_retry", labels="a", headers=credential_headers)
    assert summary["retried"] == 2
    assert summary["overrides"] == {**dict.fromkeys(CREDENTIALS, "***"), **PLAIN}
    assert_no_credential(json.dumps(summary))
    sent = fake.retried[0][1]
    assert sent["upstash-forward-authorization"] == CREDENTIALS["Upstash-Forward-Authorization"]
    assert sent["upstash-forward-x-api-key"] == CREDENTIALS["Upstash-Forward-X-Api-Key"]


def test_the_operator_masks_the_xcom_and_the_plan_log_line(sync_fake: FakeDLQ):
    sync_fake.add(3, "a")
    op = QStashDLQRetryOperator(task_id="t", labels="a", override_headers={**CREDENTIALS, **PLAIN})
    with capture_task_logs() as logs:
        summary = rendered(op).execute(ti_context())
    assert summary["overrides"] == {**dict.fromkeys(CREDENTIALS, "***"), **PLAIN}
    lines = [str(entry.get("event")) for entry in logs]
    plan = [line for line in lines if "overrides" in line]
    assert plan, lines  # the plan line was logged, so the check below is not vacuous
    assert "***" in plan[0] and "https://cb.example/done" in plan[0]
    assert_no_credential("\n".join(lines) + json.dumps(summary))
    assert sync_fake.retried[0][1]["upstash-forward-cookie"] == CREDENTIALS["Upstash-Forward-Cookie"]


def test_the_operator_refuses_a_typed_header_out_of_range_before_any_request(sync_fake: FakeDLQ):
    op = QStashDLQRetryOperator(task_id="t", labels="a", override_headers={"Upstash-Retries": 99999})
    with pytest.raises(Exception, match="must be a whole number from 0 to 1000"):
        rendered(op).execute(ti_context())
    assert sync_fake.seen == []


def test_the_trigger_event_shows_stars_and_the_request_carries_the_values(async_fake: FakeDLQ, credential_headers):
    async_fake.add(2, "a")
    trigger = QStashDLQTrigger(
        action="retry",
        qstash_conn_id="qstash_default",
        dlq_filter=DLQFilter.build(labels="a").to_dict(),
        max_requests=100,
        options={"headers": [list(pair) for pair in credential_headers]},
    )

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(drain())
    assert event.payload["status"] == "success"
    assert event.payload["overrides"] == {**dict.fromkeys(CREDENTIALS, "***"), **PLAIN}
    assert_no_credential(json.dumps(event.payload))
    assert async_fake.retried[0][1]["upstash-forward-x-auth-token"] == CREDENTIALS["Upstash-Forward-X-Auth-Token"]
