"""The two-transport test client of tests/hooks/conftest.py, for the unit tests of the hooks module."""

from tests.hooks.conftest import client, fake_qstash, sleeps  # noqa: F401  (fixtures)
