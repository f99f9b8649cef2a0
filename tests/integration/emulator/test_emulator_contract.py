"""Contract test: the emulator's exchanges validated with openapi-core against the official spec.

The spec is vendored in the repository as ``tests/spec/qstash-openapi.yaml`` (upstash/docs@ef0ce438,
2026-08-21; see ``tests/spec/README.md``). Requests really go to the in-process emulator; for validation their
URL is moved onto the spec's server (``https://qstash-eu-central-1.upstash.io``) so that
openapi-core finds the operation, and nothing else is changed.

Two known defects of the spec are worked around, not hidden:

* ``/v2/enqueue/{queueName}/{destination}`` declares ``queueName`` twice, so the spec does not
  pass openapi-spec-validator; it is loaded with ``spec_validator_cls=None``.
* the publish ``200`` answer is a ``oneOf`` of two objects with no required keys, which no
  object can satisfy (it matches both); publish answers are checked against each branch.

The DLQ routes (``/v2/dlq``, ``/v2/dlq/retry``, ``/v2/dlq/{dlqId}``, ``/v2/dlq/retry/{dlqId}``) are
checked the same way; a multi-value integer filter (``responseStatus``) is sent repeated, the
form openapi-core deserialises (the comma form is also accepted, as the spec's prose says).

``DELETE /v2/messages`` documents only ``200``; the emulator's error answers (400, 401, 429,
5xx) are checked against the spec's ``Error`` schema, and its 400s against openapi-core's own
verdict on the request: the emulator refuses exactly the requests the spec calls invalid.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse
from openapi_core.validation.request.exceptions import SecurityValidationError
from openapi_schema_validator import OAS31Validator

from qstash_emulator import FaultConfig, QStashEmulator
from tests.integration.emulator.contract_lib import (
    OVERLAY_PATH,
    SPEC_PATH,
    apply_overlay,
    as_spec_request,
    assert_documented,
    check_response,
    load_yaml,
    request_is_valid,
)
from tests.integration.emulator.emulator_testlib import TOKEN

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:callerIP parameter is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    return load_yaml(SPEC_PATH)


@pytest.fixture(scope="module")
def openapi(spec_dict: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH), config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def contract_emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TOKEN, bulk_cancel="legacy") as emu:
        yield emu


@pytest.fixture
def emu(contract_emulator: QStashEmulator) -> QStashEmulator:
    contract_emulator.reset()
    contract_emulator.set_faults(None)
    contract_emulator.seed(300, seed=11)
    return contract_emulator


VALID_BULK_QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("count", "1")],
    [("count", "500")],
    [("label", "label-1")],
    [("label", "label-1"), ("label", "label-2")],
    [("label", "label-1,label-2"), ("count", "10")],
    [("queueName", "queue-0"), ("topicName", "group-1"), ("count", "50")],
    [("url", "https://api.example.com/webhook"), ("host", "api.example.com"), ("path", "/webhook")],
    [("flowControlKey", "fck-1"), ("scheduleId", "scd-01,scd-02")],
    [("callerIp", "203.0.113.1"), ("callerIP", "203.0.113.2")],
    [("fromDate", "0"), ("toDate", "99999999999999"), ("count", "20")],
    [("messageIds", "msg_a,msg_b"), ("label", "label-3")],
    [("messageIds", "msg_a"), ("messageIds", "msg_b")],
]

INVALID_BULK_QUERIES: list[list[tuple[str, str]]] = [
    [("count", "0")],
    [("count", "501")],
    [("count", "-5")],
    [("count", "abc")],
    [("count", "2.5")],
    [("fromDate", "yesterday")],
    [("toDate", "1.5")],
    [("label", "label-1"), ("count", "1000")],
]


@pytest.mark.parametrize("query", VALID_BULK_QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q) or "none")
def test_bulk_cancel_valid_requests_and_200_answers(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], query: list[tuple[str, str]]
) -> None:
    response = requests.delete(emu.base_url + "/v2/messages", params=query, headers=emu.auth_headers, timeout=30)
    assert_documented(openapi, emu, response, 200)
    body = response.json()
    assert set(body) == {"cancelled"} and isinstance(body["cancelled"], int)


@pytest.mark.parametrize("query", INVALID_BULK_QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q))
def test_bulk_cancel_refuses_exactly_what_the_spec_calls_invalid(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], query: list[tuple[str, str]]
) -> None:
    before = emu.counts()
    response = requests.delete(emu.base_url + "/v2/messages", params=query, headers=emu.auth_headers, timeout=30)
    request = as_spec_request(emu, response)
    assert not request_is_valid(openapi, request)
    assert response.status_code == 400
    check_response(openapi, spec_dict, request, response)
    assert emu.counts() == before


def test_bulk_cancel_401_has_the_error_shape(emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any]) -> None:
    response = requests.delete(emu.base_url + "/v2/messages", params={"count": 5}, timeout=10)
    request = as_spec_request(emu, response)
    with pytest.raises(SecurityValidationError):
        openapi.validate_request(request)
    assert response.status_code == 401
    check_response(openapi, spec_dict, request, response)


def test_bulk_cancel_query_token_is_a_valid_security_scheme(emu: QStashEmulator, openapi: OpenAPI) -> None:
    response = requests.delete(emu.base_url + "/v2/messages", params={"count": "5", "qstash_token": TOKEN}, timeout=10)
    assert_documented(openapi, emu, response, 200)


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(rate_429=1.0),
        FaultConfig(rate_429_daily=1.0),
        FaultConfig(rate_5xx=1.0, statuses_5xx=(500,)),
        FaultConfig(rate_5xx=1.0, statuses_5xx=(503,)),
        FaultConfig(rate_partial=1.0, seed=4),
        FaultConfig(fail_always_status=400),
    ],
    ids=["429", "429-daily", "500", "503", "partial", "fail-always-400"],
)
def test_bulk_cancel_fault_answers_have_the_error_shape(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], faults: FaultConfig
) -> None:
    emu.set_faults(faults)
    response = requests.delete(
        emu.base_url + "/v2/messages", params={"label": "label-1", "count": "100"}, headers=emu.auth_headers, timeout=10
    )
    request = as_spec_request(emu, response)
    openapi.validate_request(request)  # the request itself was fine
    assert response.status_code >= 400
    check_response(openapi, spec_dict, request, response)


def test_single_message_routes(emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any]) -> None:
    (message_id,) = emu.add_messages(
        [{"url": "https://e.com/x", "labels": ["a", "b"], "queueName": "q", "scheduleId": "s", "callerIp": "1.2.3.4"}]
    )
    base, headers = emu.base_url, emu.auth_headers
    # The single cancel answers 202 {"cancelled": 1} as hosted QStash does since September 2026: the
    # overlay documents it (the 2026-08 spec still says 200 without a body).
    with_overlay = OpenAPI.from_dict(
        apply_overlay(spec_dict, load_yaml(OVERLAY_PATH)), config=Config(spec_validator_cls=None)
    )
    statuses = []
    for method in ("GET", "DELETE", "GET", "DELETE"):
        response = requests.request(method, f"{base}/v2/messages/{message_id}", headers=headers, timeout=10)
        request = as_spec_request(emu, response)
        with_overlay.validate_request(request)
        with_overlay.validate_response(request, RequestsOpenAPIResponse(response))
        statuses.append(response.status_code)
    assert statuses == [200, 202, 404, 404]


def test_queues_list(emu: QStashEmulator, openapi: OpenAPI) -> None:
    response = requests.get(emu.base_url + "/v2/queues", headers=emu.auth_headers, timeout=10)
    request = as_spec_request(emu, response)
    openapi.validate_request(request)
    openapi.validate_response(request, RequestsOpenAPIResponse(response))
    assert len(response.json()) == 5


@pytest.mark.parametrize(
    ("destination", "branch"),
    [("https%3A%2F%2Fexample.com%2Fhook", 0), ("my-group", 1)],
    ids=["url", "url-group"],
)
def test_publish_answer_matches_its_branch(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], destination: str, branch: int
) -> None:
    endpoints = {"endpoints": [{"url": "https://a.example/x"}, {"url": "https://b.example/y"}]}
    created = requests.post(
        f"{emu.base_url}/v2/topics/my-group/endpoints", headers=emu.auth_headers, json=endpoints, timeout=10
    )
    assert created.status_code == 200
    response = requests.post(
        f"{emu.base_url}/v2/publish/{destination}",
        headers={**emu.auth_headers, "Content-Type": "text/plain", "Upstash-Label": "a,b"},
        data="hello",
        timeout=10,
    )
    request = as_spec_request(emu, response)
    openapi.validate_request(request)
    assert response.status_code == 200
    one_of = spec_dict["paths"]["/v2/publish/{destination}"]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["oneOf"]
    if branch == 0:
        OAS31Validator({"components": spec_dict["components"], **one_of[0]}).validate(response.json())
        assert response.json()["messageId"].startswith("msg_")
        return
    # A URL group: the spec's branch wraps the entries in {"messages": [...]}, but both official SDKs
    # (qstash-py 3.4 parse_publish_response, qstash-js 2.12) parse a bare list, as hosted QStash
    # answers; each entry is the spec's PublishToUrlGroupResponse.
    items_schema = one_of[1]["properties"]["messages"]
    OAS31Validator({"components": spec_dict["components"], **items_schema}).validate(response.json())
    assert [entry["url"] for entry in response.json()] == ["https://a.example/x", "https://b.example/y"]
    assert all(entry["messageId"].startswith("msg_") for entry in response.json())


# -- DLQ -------------------------------------------------------------------------------------------


@pytest.fixture
def dlq_emu(emu: QStashEmulator) -> QStashEmulator:
    emu.seed_dlq(250, seed=5)
    emu.add_dlq(
        [
            {
                "dlqId": "dlq_fixed",
                "url": "https://e.com/x",
                "labels": ["a"],
                "responseStatus": 500,
                "responseBody": "boom",
                "responseHeader": {"Content-Type": ["text/plain"]},
                "header": {"X-Id": ["1"]},
                "maxRetries": 2,
            }
        ]
    )
    return emu


VALID_DLQ_QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("count", "1")],
    [("count", "100")],
    [("label", "label-1,label-2")],
    [("responseStatus", "500"), ("responseStatus", "404"), ("responseStatus", "429")],
    [("url", "https://api.example.com/webhook"), ("queueName", "queue-0")],
    [("topicName", "group-1"), ("scheduleId", "scd-01"), ("flowControlKey", "fck-1")],
    [("callerIp", "203.0.113.1"), ("messageId", "msg_x")],
    [("fromDate", "0"), ("toDate", "99999999999999"), ("count", "20")],
]

INVALID_DLQ_QUERIES: list[list[tuple[str, str]]] = [
    [("count", "101")],
    [("count", "abc")],
    [("responseStatus", "5xx")],
    [("fromDate", "yesterday")],
]


def _dlq_call(emu: QStashEmulator, method: str, path: str, params: Any = None, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, emu.base_url + path, params=params, headers={**emu.auth_headers, **kwargs}, timeout=30
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v2/dlq", 200), ("DELETE", "/v2/dlq", 200), ("POST", "/v2/dlq/retry", 201)],
    ids=["list", "delete", "retry"],
)
@pytest.mark.parametrize("query", VALID_DLQ_QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q) or "none")
def test_dlq_bulk_routes_answer_as_documented(
    dlq_emu: QStashEmulator, openapi: OpenAPI, query: list[tuple[str, str]], method: str, path: str, status: int
) -> None:
    response = _dlq_call(dlq_emu, method, path, query)
    assert_documented(openapi, dlq_emu, response, status)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("query", INVALID_DLQ_QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q))
def test_dlq_refuses_what_the_spec_calls_invalid(
    dlq_emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], query: list[tuple[str, str]], method: str
) -> None:
    before = dlq_emu.dlq_count()
    response = _dlq_call(dlq_emu, method, "/v2/dlq", query)
    request = as_spec_request(dlq_emu, response)
    assert not request_is_valid(openapi, request)
    assert response.status_code == 400
    check_response(openapi, spec_dict, request, response)
    assert dlq_emu.dlq_count() == before


@pytest.mark.parametrize("name", ["host", "path"])
def test_dlq_host_and_path_refusal_has_the_error_shape(
    dlq_emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], name: str
) -> None:
    # The spec does not list host/path for the DLQ (an unknown parameter to openapi-core); the
    # server refuses them, so the emulator does too, with the spec's Error shape.
    response = _dlq_call(dlq_emu, "DELETE", "/v2/dlq", {name: "x"})
    assert response.status_code == 400
    check_response(openapi, spec_dict, as_spec_request(dlq_emu, response), response)


def test_dlq_single_routes(dlq_emu: QStashEmulator, openapi: OpenAPI) -> None:
    sequence = [
        ("GET", "/v2/dlq/dlq_fixed", 200),
        ("POST", "/v2/dlq/retry/dlq_fixed", 201),
        ("GET", "/v2/dlq/dlq_fixed", 404),
        ("POST", "/v2/dlq/retry/dlq_fixed", 404),
        ("DELETE", "/v2/dlq/dlq_fixed", 404),
    ]
    first = dlq_emu.dlq_entries(limit=1)[0]["dlqId"]
    sequence += [("DELETE", f"/v2/dlq/{first}", 200), ("DELETE", f"/v2/dlq/{first}", 404)]
    for method, path, status in sequence:
        assert_documented(openapi, dlq_emu, _dlq_call(dlq_emu, method, path), status)


def test_dlq_retry_with_gone_ids_is_the_documented_404(dlq_emu: QStashEmulator, openapi: OpenAPI) -> None:
    response = _dlq_call(dlq_emu, "POST", "/v2/dlq/retry", {"dlqIds": "dlq_fixed,dlq_gone"}, **{"Upstash-Retries": "0"})
    assert_documented(openapi, dlq_emu, response, 404)


@pytest.mark.parametrize(
    "faults",
    [FaultConfig(rate_429=1.0), FaultConfig(rate_5xx=1.0, statuses_5xx=(500,))],
    ids=["429", "500"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/v2/dlq"), ("DELETE", "/v2/dlq"), ("POST", "/v2/dlq/retry")])
def test_dlq_fault_answers_have_the_error_shape(
    dlq_emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], faults: FaultConfig, method: str, path: str
) -> None:
    dlq_emu.set_faults(faults)
    response = _dlq_call(dlq_emu, method, path, {"label": "label-1"})
    request = as_spec_request(dlq_emu, response)
    openapi.validate_request(request)
    assert response.status_code >= 400
    check_response(openapi, spec_dict, request, response)
