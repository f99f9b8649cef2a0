"""
The running Airflow's version, as the tests that differ between Airflow versions read it (the provider
itself checks no version: see :mod:`airflow_qstash.compat`).
"""

from __future__ import annotations

from airflow import __version__ as _airflow_version
from packaging.version import Version


def base_version(version: str) -> tuple[int, int, int]:
    """
    ``(major, minor, micro)`` of an Airflow version string; pre-releases count as their release.

    :param version: a PEP 440 version such as ``"3.1.0"`` or ``"3.2.0rc1"``.
    """
    parsed = Version(version)
    return parsed.major, parsed.minor, parsed.micro


#: The running Airflow's ``(major, minor, micro)``.
AIRFLOW_VERSION: tuple[int, int, int] = base_version(_airflow_version)
AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION >= (3, 0, 0)
#: Airflow 3.1 moved ``dag.test()`` and task logging onto the task SDK (structlog).
AIRFLOW_V_3_1_PLUS: bool = AIRFLOW_VERSION >= (3, 1, 0)
#: Airflow 3.2 reads the connection form from provider info (``conn-fields``, ``ui-field-behaviour``).
AIRFLOW_V_3_2_PLUS: bool = AIRFLOW_VERSION >= (3, 2, 0)
