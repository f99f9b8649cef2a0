"""
The connection form's Test button: ``POST /api/v2/connections/test`` makes the API server build a
transient ``qstash`` connection from the form, load QStashHook through the provider's connection type
and call its ``test_connection`` (one ``GET /v2/queues``), here against the emulator.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(300)]


def _form(emulator, token: str) -> dict[str, object]:
    # A connection id that exists nowhere, so nothing stored is merged into what the form sends.
    return {
        "connection_id": "qstash_live_form",
        "conn_type": "qstash",
        "host": emulator.base_url,
        "password": token,
        "extra": '{"max_retries": 0, "timeout": 10}',
    }


def test_connection_test_button_succeeds_with_the_right_token(airflow_api, emulator):
    result = airflow_api.test_connection(_form(emulator, emulator.token))

    assert result["status"] is True, result
    assert emulator.base_url in result["message"]
    calls = [(e["method"], e["path"], e["status"]) for e in emulator.request_log()]
    assert calls == [("GET", "/v2/queues", 200)]


def test_connection_test_button_reports_a_wrong_token(airflow_api, emulator):
    result = airflow_api.test_connection(_form(emulator, "not-the-token"))

    assert result["status"] is False, result
    assert "401" in result["message"], result
    assert "not-the-token" not in result["message"]
    assert [(e["path"], e["status"]) for e in emulator.request_log()] == [("/v2/queues", 401)]
