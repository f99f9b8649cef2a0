"""
Reading the ``qstash`` connection, on both hooks (issue 11 items 8, 10 and 12): ``http://`` only to
loopback unless the connection allows it, every numeric extra finite and in range, an extra stored as JSON
text parsed, and every connection problem a ``QStashInputError`` raised before any request (operators fail the task
without retries for it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_qstash.config import NUMERIC_EXTRAS
from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError, QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from tests.doubles.fake_qstash import Answer, HookClient, use_connection
from tests.support.connections import raw_qstash_connection, serve_connections

LABELS = BulkCancelFilter.build(labels="a")


def raw_connection(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, extra_json: str, host: str = "https://qstash.test"
) -> str:
    """
    A connection whose ``extra`` is written as raw JSON text (for numbers ``json.dumps`` cannot write),
    served to both hooks as a ``Connection`` (Airflow 3.0/3.1 cannot read such an ``AIRFLOW_CONN_*``).
    """
    serve_connections(monkeypatch, {conn_id: raw_qstash_connection(conn_id, extra_json, host)})
    return conn_id


def refused_before_any_request(client: HookClient, conn_id: str) -> QStashConnectionError:
    """The connection is refused when read, the refusal stops Airflow's retries, and nothing is sent."""
    with pytest.raises(QStashConnectionError) as info:
        client.read_config(conn_id)
    assert isinstance(info.value, QStashInputError)  # an input refusal: operators fail without retries
    with pytest.raises(QStashConnectionError):
        client.run("bulk_cancel_by_filter", LABELS, conn_id=conn_id)
    assert client.server.sent == []
    return info.value


# --------------------------------------------------------------------------- http:// only to loopback


@pytest.mark.parametrize(
    "host",
    [
        "http://qstash.example.com",
        "http://qstash.upstash.io",
        "http://10.0.0.5:8080",
        "http://192.168.1.2",
        "http://[2001:db8::1]:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://0.0.0.0:8080",
    ],
)
def test_http_to_a_host_that_is_not_loopback_is_refused(client, monkeypatch, host):
    error = refused_before_any_request(client, use_connection(monkeypatch, conn_id="qstash_http", host=host))
    assert "clear text" in str(error)
    assert '"allow_insecure_http": true' in str(error)
    assert host in str(error)


@pytest.mark.parametrize("allow", [True, "true", " TRUE "])
def test_http_to_any_host_is_allowed_when_the_connection_says_so(client, monkeypatch, allow):
    conn_id = use_connection(
        monkeypatch, conn_id="qstash_http", host="http://qstash.internal:8080", allow_insecure_http=allow
    )
    assert client.read_config(conn_id).base_url == "http://qstash.internal:8080"


@pytest.mark.parametrize("allow", [False, "false", None])
def test_allow_insecure_http_false_keeps_the_refusal(client, monkeypatch, allow):
    conn_id = use_connection(
        monkeypatch, conn_id="qstash_http", host="http://qstash.internal", allow_insecure_http=allow
    )
    refused_before_any_request(client, conn_id)


@pytest.mark.parametrize("allow", ["yes", 1, "on", [True]])
def test_an_unreadable_allow_insecure_http_is_refused(client, monkeypatch, allow):
    conn_id = use_connection(
        monkeypatch, conn_id="qstash_http", host="http://qstash.internal", allow_insecure_http=allow
    )
    assert "'allow_insecure_http'" in str(refused_before_any_request(client, conn_id))


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.5:8080",
        "http://127.255.0.1",
        "http://[::1]:8080",
        "http://localhost:8080",
    ],
)
def test_http_to_a_loopback_host_is_allowed_and_used(client, monkeypatch, host):
    conn_id = use_connection(monkeypatch, conn_id="qstash_local", host=host)
    assert client.read_config(conn_id).base_url == host
    client.server.route("DELETE", "/v2/messages", Answer(202, {"actionId": "act_1"}))
    client.run("bulk_cancel_by_filter", LABELS, conn_id=conn_id)
    assert len(client.server.sent) == 1


# --------------------------------------------------------------------------- numeric extras

BAD_NUMBERS = [
    pytest.param('"nan"', id="nan-text"),
    pytest.param('"inf"', id="inf-text"),
    pytest.param('"-inf"', id="minus-inf-text"),
    pytest.param("NaN", id="json-NaN"),
    pytest.param("Infinity", id="json-Infinity"),
    pytest.param("1e400", id="1e400"),
    pytest.param("-1", id="negative"),
    pytest.param('"abc"', id="not-a-number"),
    pytest.param("true", id="bool"),
    pytest.param("[5]", id="list"),
    pytest.param('{"seconds": 5}', id="object"),
]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("key", ["timeout", "max_retries"])
def test_a_numeric_extra_that_is_not_a_finite_number_in_range_is_refused_by_name(client, monkeypatch, key, value):
    conn_id = raw_connection(monkeypatch, "qstash_extras", f'{{"{key}": {value}}}')
    error = refused_before_any_request(client, conn_id)
    assert f"Connection extra {key!r}=" in str(error)
    spec = NUMERIC_EXTRAS[key]
    assert f"from {spec.minimum:g} to {spec.maximum:g}" in str(error)


@pytest.mark.parametrize("key", list(NUMERIC_EXTRAS))
def test_every_numeric_extra_refuses_nan_by_name(client, monkeypatch, key):
    conn_id = raw_connection(monkeypatch, "qstash_extras", f'{{"{key}": "nan"}}')
    assert repr(key) in str(refused_before_any_request(client, conn_id))


# --------------------------------------------------------------------------- extras stored as JSON text


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(json.dumps(json.dumps({"timeout": 7, "max_retries": 1})), id="json-text"),
        pytest.param(json.dumps(json.dumps(json.dumps({"timeout": 7, "max_retries": 1}))), id="double-encoded"),
    ],
)
def test_an_extra_stored_as_json_text_is_parsed(client, monkeypatch, extra):
    config = client.read_config(raw_connection(monkeypatch, "qstash_text_extra", extra))
    assert (config.timeout, config.retry.max_retries) == (7.0, 1)


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        pytest.param("[1, 2]", "list", id="list"),
        pytest.param(json.dumps("[1, 2]"), "list", id="list-as-text"),
        pytest.param(json.dumps("5"), "int", id="number-as-text"),
    ],
)
def test_an_extra_that_is_not_an_object_is_refused_clearly(client, monkeypatch, extra, kind):
    error = refused_before_any_request(client, raw_connection(monkeypatch, "qstash_bad_extra", extra))
    assert f"a JSON {kind}, not an object" in str(error)


@pytest.mark.parametrize(
    "extra", [pytest.param('"timeout=5"', id="key-value-text"), pytest.param(json.dumps('"oops"'), id="text-in-text")]
)
def test_an_extra_that_is_not_json_is_refused_clearly(client, monkeypatch, extra):
    error = refused_before_any_request(client, raw_connection(monkeypatch, "qstash_bad_extra", extra))
    assert "not JSON" in str(error)
    assert '{"timeout": 30}' in str(error)


# --------------------------------------------------------------------------- not retried by Airflow


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        pytest.param({"token": None}, "has no QStash token", id="missing-token"),
        pytest.param({"token": "   "}, "has no QStash token", id="blank-token"),
        pytest.param({"host": "xx-north-9"}, "Unknown QStash region 'xx-north-9'", id="unknown-region"),
        pytest.param({"host": "ftp://qstash.test"}, "not a region id or a base URL", id="bad-scheme"),
        pytest.param({"host": "https://user:pw@qstash.test"}, "not a region id or a base URL", id="credentials"),
        pytest.param({"host": "http://127.0.0.1:notaport"}, "not a region id or a base URL", id="bad-port"),
    ],
)
def test_a_connection_problem_is_an_airflow_fail_exception(client, monkeypatch, connection: dict[str, Any], fragment):
    error = refused_before_any_request(client, use_connection(monkeypatch, conn_id="qstash_broken", **connection))
    assert fragment in str(error)


def test_an_api_error_is_not_a_fail_exception(client):
    """A server answer is not the connection's fault: Airflow's own task retries stay available."""
    client.server.route("DELETE", "/v2/messages", Answer(400, {"error": "bad request"}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", LABELS)
    assert not isinstance(info.value, AirflowFailException)
