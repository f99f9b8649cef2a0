"""Where the example DAGs are, and the ``DagBag`` that parses them (no metadata DB: it only parses files)."""

from __future__ import annotations

from pathlib import Path

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO / "dags_examples"

__all__ = ["DAG_FOLDER", "REPO", "DagBag"]
