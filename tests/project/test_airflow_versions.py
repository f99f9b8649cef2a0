"""The tests' reading of the running Airflow's version (tests/support/airflow_versions.py)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import airflow_versions


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.11.0", (2, 11, 0)), ("3.0.6", (3, 0, 6)), ("3.2.0rc1", (3, 2, 0)), ("3.3.2.dev0", (3, 3, 2))],
)
def test_base_version(version: str, expected: tuple[int, int, int]):
    assert airflow_versions.base_version(version) == expected


def test_version_flags_match_the_features_they_name():
    from airflow import __version__
    from airflow.providers_manager import ProvidersManager

    assert airflow_versions.base_version(__version__) == airflow_versions.AIRFLOW_VERSION
    # Airflow 3 brought the task SDK, 3.1 dag.test() on its DAG, 3.2 the connection form read from provider info
    assert airflow_versions.AIRFLOW_V_3_0_PLUS is (importlib.util.find_spec("airflow.sdk") is not None)
    if airflow_versions.AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG

        assert airflow_versions.AIRFLOW_V_3_1_PLUS is hasattr(DAG, "test")
    else:
        assert airflow_versions.AIRFLOW_V_3_1_PLUS is False
    assert airflow_versions.AIRFLOW_V_3_2_PLUS is hasattr(ProvidersManager, "_load_ui_metadata")
