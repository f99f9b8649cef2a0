"""
What operators, hooks and triggers log, captured the same way on every supported Airflow.

Airflow 3.1 and later log through structlog (``structlog.testing.capture_logs`` sees it); Airflow 2.11 and
3.0 through the standard library's ``logging`` (and 2.11 does not install structlog at all). Tests read
the entries as structlog's capture gives them: dicts with at least ``event`` and ``log_level``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from tests.support.airflow_versions import AIRFLOW_V_3_1_PLUS


class _ListHandler(logging.Handler):
    def __init__(self, entries: list[MutableMapping[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self.entries = entries

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append({"event": record.getMessage(), "log_level": record.levelname.lower()})


@contextmanager
def capture_task_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Collect every log entry made inside the block, as ``{"event": ..., "log_level": ...}`` dicts."""
    if AIRFLOW_V_3_1_PLUS:
        import structlog

        with structlog.testing.capture_logs() as captured:
            yield captured
        return
    recorded: list[MutableMapping[str, Any]] = []
    handler = _ListHandler(recorded)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield recorded
    finally:
        root.removeHandler(handler)
