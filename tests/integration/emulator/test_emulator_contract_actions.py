"""Contract test of ``--bulk-cancel actions``: the spec with the bulk-actions overlay applied, via openapi-core.

The overlay (``tests/spec/qstash-bulk-actions-overlay.yaml``) adds ``async``, the 202/412/429
answers of ``DELETE /v2/messages``, ``/v2/bulkActions`` and ``/v2/bulkActions/{actionId}`` with the
documented ``BulkAction``, and turns ``count`` into an ignored, unbounded parameter; its header
says which parts are confirmed and which are assumed. :func:`contract_lib.apply_overlay` merges
it (one rule, written there). Requests go to a real in-process emulator in ``actions`` mode; the
spec's two known defects are handled as in ``test_emulator_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse

from qstash_emulator import FaultConfig, QStashEmulator
from tests.integration.emulator.contract_lib import (
    OVERLAY_PATH,
    SPEC_PATH,
    apply_overlay,
    as_spec_request,
    check_response,
    load_yaml,
    request_is_valid,
)
from tests.integration.emulator.emulator_testlib import TOKEN

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:callerIP parameter is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:count parameter is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def spec_dict() -> dict[str, Any]:
    return apply_overlay(load_yaml(SPEC_PATH), load_yaml(OVERLAY_PATH))


@pytest.fixture(scope="module")
def openapi(spec_dict: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(spec_dict, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def contract_emulator() -> Iterator[QStashEmulator]:
    # 300 messages/s and a 50 ms wait: an action over all 300 seeded messages runs for about a second
    with QStashEmulator(token=TOKEN, bulk_cancel="actions", action_rate=300, sync_wait=0.05) as emu:
        yield emu


@pytest.fixture
def emu(contract_emulator: QStashEmulator) -> Iterator[QStashEmulator]:
    contract_emulator.reset()
    contract_emulator.set_faults(None)
    contract_emulator.seed(300, seed=11)
    yield contract_emulator
    contract_emulator.set_faults(None)


def _send(emu: QStashEmulator, method: str, path: str, params: Any = None) -> requests.Response:
    return requests.request(method, emu.base_url + path, params=params, headers=emu.auth_headers, timeout=30)


def _validated(openapi: OpenAPI, emu: QStashEmulator, response: requests.Response) -> Any:
    request = as_spec_request(emu, response)
    openapi.validate_request(request)
    openapi.validate_response(request, RequestsOpenAPIResponse(response))
    return response.json()


def test_overlay_keeps_the_spec_and_adds_the_assumed_parts(spec_dict: dict[str, Any]) -> None:
    delete = spec_dict["paths"]["/v2/messages"]["delete"]
    names = [p["name"] for p in delete["parameters"]]
    assert names.count("count") == 1 and "async" in names and "label" in names and "messageIds" in names
    assert set(delete["responses"]) == {"200", "202", "412", "429"}
    assert "/v2/bulkActions/{actionId}" in spec_dict["paths"] and "BulkAction" in spec_dict["components"]["schemas"]
    assert "Message" in spec_dict["components"]["schemas"]  # the spec's own schemas are still there


ASYNC_QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("label", "label-1")],
    [("label", "label-1,label-2"), ("count", "10")],
    [("queueName", "queue-0"), ("topicName", "group-1"), ("count", "0")],
    [("url", "https://api.example.com/webhook"), ("host", "api.example.com"), ("path", "/webhook")],
    [("flowControlKey", "fck-1"), ("scheduleId", "scd-01,scd-02")],
    [("callerIp", "203.0.113.1"), ("callerIP", "203.0.113.2")],
    [("fromDate", "0"), ("toDate", "99999999999999"), ("count", "5000")],
]


@pytest.mark.parametrize("query", ASYNC_QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q) or "none")
def test_async_filter_cancel_answers_202_then_the_action_validates(
    emu: QStashEmulator, openapi: OpenAPI, query: list[tuple[str, str]]
) -> None:
    response = _send(emu, "DELETE", "/v2/messages", [*query, ("async", "true")])
    assert response.status_code == 202, response.text
    action_id = _validated(openapi, emu, response)["actionId"]
    action = _validated(openapi, emu, _send(emu, "GET", f"/v2/bulkActions/{action_id}"))
    assert action["actionId"] == action_id
    emu.wait_actions_idle(timeout=30)
    finished = _validated(openapi, emu, _send(emu, "GET", f"/v2/bulkActions/{action_id}"))
    assert finished["state"] == "FINISHED" and "completedAt" in finished


def test_sync_answers_200_when_done_and_429_while_running(emu: QStashEmulator, openapi: OpenAPI) -> None:
    finished = _send(emu, "DELETE", "/v2/messages", {"label": "no-such-label"})
    assert finished.status_code == 200
    assert _validated(openapi, emu, finished) == {"cancelled": 0}
    running = _send(emu, "DELETE", "/v2/messages", {"fromDate": "0"})
    assert running.status_code == 429
    _validated(openapi, emu, running)


def test_412_for_the_same_filter_in_progress(emu: QStashEmulator, openapi: OpenAPI) -> None:
    assert _send(emu, "DELETE", "/v2/messages", {"fromDate": "0", "async": "true"}).status_code == 202
    again = _send(emu, "DELETE", "/v2/messages", {"fromDate": "0", "async": "true"})
    assert again.status_code == 412
    _validated(openapi, emu, again)


def test_message_ids_answer_200_cancelled(emu: QStashEmulator, openapi: OpenAPI) -> None:
    ids = emu.add_messages([{"url": "https://e.com/a"}, {"url": "https://e.com/b"}])
    response = _send(emu, "DELETE", "/v2/messages", {"messageIds": ",".join(ids), "async": "true"})
    assert _validated(openapi, emu, response) == {"cancelled": 2}


def test_listing_pages_and_states_validate(emu: QStashEmulator, openapi: OpenAPI) -> None:
    for label in ("label-5", "label-6", "none"):
        _send(emu, "DELETE", "/v2/messages", {"label": label, "async": "true"})
    for params in ({}, {"count": "1"}, {"count": "1000", "state": "FINISHED"}, {"state": "IN_PROGRESS"}):
        body = _validated(openapi, emu, _send(emu, "GET", "/v2/bulkActions", params))
        if "cursor" in body:
            _validated(openapi, emu, _send(emu, "GET", "/v2/bulkActions", {**params, "cursor": body["cursor"]}))


@pytest.mark.parametrize("params", [{"count": "0"}, {"count": "1001"}, {"count": "x"}, {"state": "DONE"}])
def test_listing_refuses_exactly_what_the_overlay_calls_invalid(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], params: dict[str, str]
) -> None:
    response = _send(emu, "GET", "/v2/bulkActions", params)
    request = as_spec_request(emu, response)
    assert not request_is_valid(openapi, request)
    assert response.status_code == 400
    check_response(openapi, spec_dict, request, response)


def test_unknown_action_is_a_documented_404(emu: QStashEmulator, openapi: OpenAPI) -> None:
    response = _send(emu, "GET", "/v2/bulkActions/act_unknown")
    assert response.status_code == 404
    _validated(openapi, emu, response)


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(rate_429=1.0),
        FaultConfig(rate_5xx=1.0, statuses_5xx=(503,)),
        FaultConfig(rate_spurious_412=1.0),
        FaultConfig(rate_start_lost=1.0),
    ],
    ids=["429", "503", "spurious-412", "start-lost"],
)
def test_fault_answers_have_the_error_shape(
    emu: QStashEmulator, openapi: OpenAPI, spec_dict: dict[str, Any], faults: FaultConfig
) -> None:
    emu.set_faults(faults)
    for method, path, params in (
        ("DELETE", "/v2/messages", {"label": "label-7", "async": "true"}),
        ("GET", "/v2/bulkActions", None),
    ):
        response = _send(emu, method, path, params)
        request = as_spec_request(emu, response)
        openapi.validate_request(request)
        if response.status_code < 400:  # the action faults touch only filter cancels
            assert faults.rate_429 == faults.rate_5xx == 0 and path == "/v2/bulkActions"
            continue
        check_response(openapi, spec_dict, request, response)
