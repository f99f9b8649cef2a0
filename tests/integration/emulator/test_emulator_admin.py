"""Issue 21.1-21.3: the admin API seeds one's own data (and refuses a body that seeds nothing), describes itself
(``GET /_emulator/openapi.json``), filters its listing and counts by label; the CLI says what ``--seed`` makes,
prints the counts table, and listens on a port that is not Airflow's."""

from __future__ import annotations

import copy
import io
import socket
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate as validate_spec
from starlette.routing import Route

from qstash_emulator import QStashEmulator
from qstash_emulator.admin_schema import ADMIN_OPENAPI
from qstash_emulator.app import ROUTES
from qstash_emulator.cli import DEFAULT_PORT, build_parser, counts_main
from qstash_emulator.query import QueryError, parse_admin_filter, parse_instant
from qstash_emulator.server import bind_socket
from tests.integration.emulator.emulator_testlib import TOKEN, Api

pytestmark = pytest.mark.timeout(120)

EMULATOR_ROOT = Path(__file__).resolve().parents[3] / "emulator"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


H04, H05 = ms("2025-12-05T04:00:00+00:00"), ms("2025-12-05T05:00:00+00:00")


def admin(emu: QStashEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, emu.base_url + "/_emulator" + path, timeout=10, **kwargs)


# -- 21.1: seeding one's own data ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/seed", {}, '{"count": N}'),
        ("/seed", {"seed": 3}, '{"count": N}'),
        ("/seed", {"count": 0}, "between 1 and"),
        ("/seed", None, '{"count": N}'),
        ("/dlq/seed", {}, '{"count": N}'),
        ("/dlq/seed", {"count": 0}, "between 1 and"),
        ("/messages", [], '"url"'),
        ("/messages", {"messages": []}, '"url"'),
        ("/dlq", [], '"responseStatus"'),
        ("/fail", {"messageIds": []}, '"messageIds"'),
        ("/fail", {}, '"messageIds"'),
    ],
)
def test_an_admin_body_that_seeds_nothing_is_a_400_saying_what_to_send(
    emu: QStashEmulator, path: str, body: Any, says: str
) -> None:
    response = admin(emu, "POST", path, **({} if body is None else {"json": body}))
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]
    assert emu.counts() == {"held": 0, "cancelled": 0} and emu.dlq_ids() == set()


def test_the_python_helpers_still_take_nothing_as_nothing(emu: QStashEmulator) -> None:
    assert (emu.seed(0), emu.seed_dlq(0), emu.add_messages([]), emu.add_dlq([]), emu.fail_messages([])) == (
        0,
        0,
        [],
        [],
        [],
    )


def test_the_documented_recipe_seeds_two_labels_at_chosen_times_and_a_dlq_entry(emu: QStashEmulator) -> None:
    """The bodies of the curl recipe in the docs (h-emulator-docs.md), sent as the recipe sends them."""
    messages = [
        {"url": "https://example.com/billing", "labels": ["billing"], "createdAt": H04 + 10 * 60_000},
        {"url": "https://example.com/billing", "labels": ["billing"], "createdAt": H04 + 40 * 60_000},
        {"url": "https://example.com/reports", "labels": ["reports"], "createdAt": H04 + 20 * 60_000},
        {"url": "https://example.com/billing", "labels": ["billing"], "createdAt": H05 + 30 * 60_000},
    ]
    ids = admin(emu, "POST", "/messages", json=messages).json()["messageIds"]
    assert len(ids) == 4
    dlq = [{"url": "https://example.com/billing", "labels": ["billing"], "createdAt": H04, "responseStatus": 503}]
    (dlq_id,) = admin(emu, "POST", "/dlq", json=dlq).json()["dlqIds"]
    failed = admin(emu, "POST", "/fail", json={"messageIds": [ids[3]], "responseStatus": 404}).json()["dlqIds"]
    entries = {e["dlqId"]: e for e in admin(emu, "GET", "/dlq").json()}
    assert entries[dlq_id]["responseStatus"] == 503 and entries[failed[0]]["responseStatus"] == 404
    window = {"from": "2025-12-05T04:00:00Z", "to": "2025-12-05T05:00:00Z", "by": "label"}
    counts = admin(emu, "GET", "/counts", params=window).json()
    assert counts["counts"] == [
        {"label": "billing", "held": 2, "cancelled": 0, "total": 2},
        {"label": "reports", "held": 1, "cancelled": 0, "total": 1},
    ]


def test_the_cli_help_says_what_seed_makes() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "label-0..label-9" in text and "30 days before now" in text and "/_emulator/messages" in text


# -- 21.1: the admin API describes itself ----------------------------------------------------------


def _admin_routes() -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for route in ROUTES:
        assert isinstance(route, Route)
        if route.path.startswith("/_emulator/"):
            routes.setdefault(route.path, set()).update(m.lower() for m in route.methods or () if m != "HEAD")
    return routes


def test_the_schema_is_served_valid_and_names_exactly_the_admin_routes(emu: QStashEmulator) -> None:
    served = admin(emu, "GET", "/openapi.json").json()
    assert served == ADMIN_OPENAPI
    validate_spec(copy.deepcopy(served))
    described = {path: set(item) for path, item in served["paths"].items()}
    assert described == _admin_routes()


@pytest.fixture
def admin_openapi(emu: QStashEmulator) -> OpenAPI:
    spec = copy.deepcopy(ADMIN_OPENAPI)
    spec["servers"] = [{"url": emu.base_url}]
    return OpenAPI.from_dict(spec)


def test_the_admin_answers_match_the_schema(emu: QStashEmulator, admin_openapi: OpenAPI, api: Api) -> None:
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/health", {}, 200),
        ("POST", "/messages", {"json": [{"url": "https://example.com/a", "labels": ["billing"]}]}, 200),
        ("POST", "/messages", {"json": []}, 400),
        ("POST", "/seed", {"json": {"count": 20, "seed": 2}}, 200),
        ("POST", "/seed", {"json": {}}, 400),
        ("GET", "/messages", {"params": {"label": "billing", "state": "all", "limit": "5"}}, 200),
        ("GET", "/messages", {"params": {"colour": "red"}}, 400),
        ("GET", "/message-ids", {"params": {"queue": "queue-1"}}, 200),
        ("GET", "/counts", {"params": {"by": "queue"}}, 200),
        ("GET", "/stats", {}, 200),
        ("POST", "/dlq", {"json": [{"url": "https://example.com/a", "responseStatus": 500}]}, 200),
        ("POST", "/dlq/seed", {"json": {"count": 3}}, 200),
        ("GET", "/dlq", {"params": {"limit": "2"}}, 200),
        ("GET", "/dlq/count", {}, 200),
        ("PUT", "/faults", {"json": {"rate_5xx": 0.0, "seed": 1}}, 200),
        ("GET", "/faults", {}, 200),
        ("GET", "/bulk-actions", {}, 200),
    ]
    api.request("GET", "/v2/queues")
    calls.append(("GET", "/requests", {}, 200))
    for method, path, kwargs, status in calls:
        response = admin(emu, method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        request = RequestsOpenAPIRequest(response.request)
        if status == 200:
            admin_openapi.validate_request(request)
        admin_openapi.validate_response(request, RequestsOpenAPIResponse(response))


# -- 21.2: the listing's filters and the counts ----------------------------------------------------


@pytest.fixture
def hour(emu: QStashEmulator) -> QStashEmulator:
    """Billing and reports inside 04:00-05:00 UTC, billing outside it, one message with two labels, queues."""
    emu.add_messages(
        [
            {"messageId": "b1", "url": "https://e.com/b", "labels": ["billing"], "createdAt": H04},
            {"messageId": "b2", "url": "https://e.com/b", "labels": ["billing"], "createdAt": H05, "queueName": "q1"},
            {"messageId": "b3", "url": "https://e.com/b", "labels": ["billing"], "createdAt": H05 + 1},
            {"messageId": "r1", "url": "https://e.com/r", "labels": ["reports"], "createdAt": H04 + 5},
            {"messageId": "x1", "url": "https://e.com/x", "labels": ["billing", "reports"], "createdAt": H04 + 9},
            {"messageId": "n1", "url": "https://e.com/n", "createdAt": H04 + 7, "queueName": "q1"},
            {"messageId": "B1", "url": "https://e.com/b", "labels": ["Billing"], "createdAt": H04 + 1},
            {"messageId": "bx", "url": "https://e.com/b", "labels": ["billing-x"], "createdAt": H04 + 2},
        ]
    )
    return emu


def ids_of(emu: QStashEmulator, **params: Any) -> list[str]:
    response = admin(emu, "GET", "/messages", params=params)
    assert response.status_code == 200, response.text
    return sorted(m["messageId"] for m in response.json())


def test_the_listing_filters_by_label_exactly(hour: QStashEmulator) -> None:
    assert ids_of(hour, label="billing") == ["b1", "b2", "b3", "x1"]  # not Billing, not billing-x
    assert ids_of(hour, label="billing,reports") == ["b1", "b2", "b3", "r1", "x1"]
    assert ids_of(hour, label=["Billing", "billing-x"]) == ["B1", "bx"]


def test_the_listing_filters_by_queue_and_state(hour: QStashEmulator, api: Api) -> None:
    assert ids_of(hour, queue="q1") == ["b2", "n1"]
    # A single cancel answers 202 with a count, as hosted QStash does.
    assert (
        api.request("DELETE", "/v2/messages/b1").status_code == 202
    )  # hosted QStash answers a single cancel with 202 and a count
    assert ids_of(hour, label="billing") == ["b2", "b3", "x1"]
    assert ids_of(hour, label="billing", state="cancelled") == ["b1"]
    assert ids_of(hour, label="billing", state="all") == ["b1", "b2", "b3", "x1"]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"from": str(H04), "to": str(H05)}, ["b1", "b2", "x1"]),
        ({"from": "2025-12-05T04:00:00Z", "to": "2025-12-05T05:00:00Z"}, ["b1", "b2", "x1"]),
        ({"from": "2025-12-05T06:00:00+02:00", "to": "2025-12-05T04:59:59.999+00:00"}, ["b1", "x1"]),
        ({"from": str(H05 + 1)}, ["b3"]),
        ({"to": str(H04)}, ["b1"]),
    ],
)
def test_the_listing_filters_by_created_window(hour: QStashEmulator, window: dict[str, str], expected: list[str]):
    assert ids_of(hour, label="billing", **window) == expected
    ids = admin(hour, "GET", "/message-ids", params={"label": "billing", **window}).json()
    assert ids == expected


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"labels": "billing"}, "unknown parameter 'labels'"),
        ({"queueName": "q1"}, "unknown parameter 'queueName'"),
        ({"state": "gone"}, "state must be one of"),
        ({"state": ["held", "all"]}, "state must be given at most once"),
        ({"from": "2025-12-05T04:00:00"}, "timezone"),
        ({"from": "yesterday"}, "ISO 8601"),
        ({"from": str(2**63)}, "from"),
        ({"from": str(H05), "to": str(H04)}, "selects nothing"),
        ({"limit": "-1"}, "limit"),
    ],
)
def test_a_bad_listing_parameter_is_a_400_naming_it(hour: QStashEmulator, params: dict[str, Any], says: str) -> None:
    response = admin(hour, "GET", "/messages", params=params)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_counts_by_label_answer_only_billing_in_that_hour_in_one_call(hour: QStashEmulator, api: Api) -> None:
    api.request("DELETE", "/v2/messages", params={"label": "billing", "fromDate": H04, "toDate": H05})
    window = {"from": "2025-12-05T04:00:00Z", "to": "2025-12-05T05:00:00Z", "state": "all"}
    answer = admin(hour, "GET", "/counts", params=window).json()
    assert answer["by"] == "label"
    assert answer["counts"] == [
        {"label": "Billing", "held": 1, "cancelled": 0, "total": 1},
        {"label": "billing", "held": 0, "cancelled": 3, "total": 3},
        {"label": "billing-x", "held": 1, "cancelled": 0, "total": 1},
        {"label": "reports", "held": 1, "cancelled": 1, "total": 2},  # x1 has both labels
        {"label": None, "held": 1, "cancelled": 0, "total": 1},
    ]
    assert answer["total"] == {"held": 4, "cancelled": 3, "total": 7}  # x1 once


def test_counts_by_queue_and_state_and_their_refusals(hour: QStashEmulator) -> None:
    by_queue = admin(hour, "GET", "/counts", params={"by": "queue"}).json()["counts"]
    assert by_queue == [
        {"queue": "q1", "held": 2, "cancelled": 0, "total": 2},
        {"queue": None, "held": 6, "cancelled": 0, "total": 6},
    ]
    by_state = admin(hour, "GET", "/counts", params={"by": "state", "label": "reports"}).json()["counts"]
    assert by_state == [{"state": "held", "held": 2, "cancelled": 0, "total": 2}]
    for params in ({"by": "colour"}, {"by": ["label", "queue"]}, {"group": "label"}):
        assert admin(hour, "GET", "/counts", params=params).status_code == 400


def test_parse_instant_reads_unix_ms_and_iso_with_a_zone() -> None:
    assert parse_instant("from", f" {H04} ") == H04
    assert parse_instant("from", "2025-12-05T04:00:00Z") == H04
    assert parse_instant("from", "2025-12-05T05:00:00+01:00") == H04
    for bad in ("2025-12-05", "2025-12-05T04:00", "1e12", "-5", "", "1969-12-31T23:59:59Z"):
        with pytest.raises(QueryError):
            parse_instant("from", bad)


def test_parse_admin_filter_defaults_to_held_and_splits_values() -> None:
    selection, extra = parse_admin_filter(
        [("label", "a, b"), ("label", "a"), ("queue", "q"), ("by", "queue")], extra=("by",)
    )
    assert (selection.state, selection.labels, selection.queues, extra) == ("held", ("a", "b"), ("q",), {"by": "queue"})


# -- 21.2: the counts table as a command -----------------------------------------------------------


def run_counts(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = counts_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_the_counts_command_prints_the_by_label_table(hour: QStashEmulator) -> None:
    code, out, _ = run_counts("--url", hour.base_url, "--from", "2025-12-05T04:00:00Z", "--to", str(H05))
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["label", "held", "cancelled", "total"]
    assert ["billing", "3", "0", "3"] in rows and ["reports", "2", "0", "2"] in rows
    assert ["(no", "label)", "1", "0", "1"] in rows
    assert rows[-1] == ["all", "messages", "7", "0", "7"]
    code, out, _ = run_counts("--url", hour.base_url, "--label", "billing", "--by", "queue", "--json")
    assert code == 0 and '"by": "queue"' in out


def test_the_counts_command_says_what_is_wrong(hour: QStashEmulator) -> None:
    code, _, err = run_counts("--url", hour.base_url, "--from", "2025-12-05T04:00")
    assert code == 2 and "timezone" in err
    code, _, err = run_counts("--url", hour.base_url + "/_emulator")
    assert code == 2 and "base URL" in err
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, _, err = run_counts("--url", f"http://127.0.0.1:{port}")
    assert code == 1 and "--url" in err and "cannot reach" in err


def test_the_counts_command_runs_from_the_console_entry(hour: QStashEmulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qstash_emulator", "counts", "--url", hour.base_url, "--label", "reports"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(EMULATOR_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "reports" in result.stdout and "billing" in result.stdout  # x1 carries both


# -- 21.3: a port that is not Airflow's ------------------------------------------------------------


def test_the_default_port_is_not_airflows() -> None:
    assert DEFAULT_PORT == 8787 != 8080
    assert build_parser().parse_args([]).port == DEFAULT_PORT
    assert "8787" in build_parser().format_help()


def test_a_port_in_use_says_to_pass_port() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="--port"):
            bind_socket("127.0.0.1", port)
        result = subprocess.run(
            [sys.executable, "-m", "qstash_emulator", "--port", str(port), "--token", TOKEN],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONPATH": str(EMULATOR_ROOT), "PATH": "/usr/bin:/bin"},
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr and "already in use" in result.stderr


def test_the_python_helper_counts_by_label_with_filters(hour: QStashEmulator) -> None:
    answer = hour.counts_by(label=["billing", "reports"], from_="2025-12-05T04:00:00Z", to=H05)
    assert [(row["label"], row["held"]) for row in answer["counts"]] == [("billing", 3), ("reports", 2)]
    assert hour.counts_by("queue", queue="q1")["total"] == {"held": 2, "cancelled": 0, "total": 2}
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        hour.counts_by(colour="red")
