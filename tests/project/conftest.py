"""Fixtures of the repository-wide checks: the example DAG folder, parsed once per module (``parsed``)."""

from tests.support.example_dags import parsed  # noqa: F401  (a fixture: pytest finds it here)
