"""Shared fixtures: a ``qstash_default`` connection from an env var, so no metadata DB is needed."""

from __future__ import annotations

import json
import os

import pytest

#: The token every test uses; the secret-hygiene checks scan captured output for it.
TEST_TOKEN = "qstash-test-token-5ecr3t-Do-Not-Log"
FAKE_BASE_URL = "https://qstash.test"

# Fast retries for the whole suite; individual tests override the connection when they need others.
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


def connection_json(host: str = FAKE_BASE_URL, token: str | None = TEST_TOKEN, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for a ``qstash`` connection with quick retries."""
    extra = {"max_retries": 3, "backoff_initial": 0, "backoff_max": 0, "timeout": 5, **extra}
    conn: dict[str, object] = {"conn_type": "qstash", "host": host, "extra": extra}
    if token is not None:
        conn["password"] = token
    return json.dumps(conn)


@pytest.fixture
def qstash_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """``qstash_default`` pointing at :data:`FAKE_BASE_URL` (for requests-mock); returns the base URL."""
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json())
    return FAKE_BASE_URL
