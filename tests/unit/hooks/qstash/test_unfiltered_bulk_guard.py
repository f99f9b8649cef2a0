"""
The last line before the network (#17.1): both hooks' ``send`` refuse a filterless bulk request (``DELETE
/v2/messages``, ``DELETE /v2/dlq``, ``POST /v2/dlq/retry`` and the ``/bulk`` forms) unless the call was made
with the author's all-flag, before any request goes out.
"""

from __future__ import annotations

from typing import Any

import pytest

import airflow_qstash.hooks.qstash as qstash_module
from airflow_qstash.config import QStashConnectionConfig, RetryPolicy
from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.protocol.calls import Call
from airflow_qstash.protocol.endpoints import BULK_CANCEL, DLQ_DELETE, DLQ_RETRY, Endpoint
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import Answer, HookClient

FILTERLESS_CALLS = [
    pytest.param(Call(BULK_CANCEL), id="bulk-cancel"),
    pytest.param(Call(BULK_CANCEL, (("count", "500"), ("async", "true"))), id="bulk-cancel-count-async"),
    pytest.param(Call(BULK_CANCEL, (("label", ""), ("queueName", "  "))), id="bulk-cancel-blank-values"),
    pytest.param(Call(DLQ_DELETE, (("count", "100"), ("cursor", "c1"))), id="dlq-delete"),
    pytest.param(Call(DLQ_RETRY), id="dlq-retry"),
    pytest.param(Call(Endpoint("DELETE", "/v2/dlq/bulk")), id="dlq-bulk-delete"),
    pytest.param(Call(Endpoint("POST", "/v2/dlq/retry/bulk")), id="dlq-bulk-retry"),
    pytest.param(Call(Endpoint("delete", "/v2//messages/")), id="bulk-cancel-unnormalised-path"),
    pytest.param(Call(Endpoint("DELETE", "/v2/queues/%2e%2e/messages")), id="encoded-dot-segments"),
]


def _answer_everything(client: HookClient) -> None:
    for method, path in [
        ("DELETE", "/v2/messages"),
        ("DELETE", "/v2/dlq"),
        ("POST", "/v2/dlq/retry"),
        ("DELETE", "/v2/dlq/bulk"),
        ("POST", "/v2/dlq/retry/bulk"),
    ]:
        client.server.route(method, path, Answer(200, {"cancelled": 7, "deleted": 7, "responses": []}))


@pytest.mark.parametrize("call", FILTERLESS_CALLS)
def test_a_filterless_bulk_call_without_the_all_flag_is_refused_before_any_request(client, call):
    _answer_everything(client)
    with pytest.raises(QStashInputError, match="with no filter") as info:
        client.run("send", call)
    assert "Nothing was sent" in str(info.value)
    assert client.server.calls() == []


def test_an_id_that_decodes_to_dot_segments_never_becomes_a_call():
    with pytest.raises(ValueError, match="dot segment"):
        Call(Endpoint("DELETE", "/v2/messages/{id}"), path_id="..")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(Call(BULK_CANCEL, (("count", "500"), ("async", "true")), select_all=True), id="cancel-all"),
        pytest.param(Call(DLQ_DELETE, (("count", "100"),), select_all=True), id="delete-all"),
        pytest.param(Call(DLQ_RETRY, select_all=True), id="retry-all"),
        pytest.param(Call(BULK_CANCEL, (("label", "a"),)), id="filtered"),
        pytest.param(Call(DLQ_DELETE, (("responseStatus", "500"),)), id="dlq-filtered"),
    ],
)
def test_a_filtered_call_or_one_made_with_the_all_flag_is_sent(client, call):
    _answer_everything(client)
    client.run("send", call)
    assert len(client.server.calls()) == 1


@pytest.fixture
def swallowing_base_url(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Force a base URL past the connection reader, as the #17.1 connection did before it was refused there."""

    def use(base_url: str) -> None:
        def from_connection(cls: Any, conn: Any, extra: Any = None) -> QStashConnectionConfig:
            return QStashConnectionConfig(
                conn_id=conn.conn_id, base_url=base_url, token=TEST_TOKEN, retry=RetryPolicy(max_retries=0)
            )

        monkeypatch.setattr(qstash_module.QStashConnectionConfig, "from_connection", classmethod(from_connection))

    return use


@pytest.mark.parametrize(
    ("base_url", "method", "args"),
    [
        ("https://qstash.test/v2/messages#", "cancel_message", ("msg_1",)),
        ("https://qstash.test/v2/messages?", "cancel_message", ("msg_1",)),
        ("https://qstash.test/v2/dlq#", "delete_dlq_message", ("dlq_1",)),
        ("https://qstash.test/v2/dlq?", "delete_dlq_message", ("dlq_1",)),
    ],
)
def test_a_base_url_that_swallows_the_path_cannot_turn_a_single_delete_into_a_bulk_one(
    client, swallowing_base_url, base_url, method, args
):
    """#17.1: with '.../v2/messages#' as host, cancel_message(id) sent a filterless DELETE /v2/messages."""
    swallowing_base_url(base_url)
    _answer_everything(client)
    with pytest.raises(QStashInputError, match="with no filter"):
        client.run(method, *args)
    assert client.server.calls() == []
