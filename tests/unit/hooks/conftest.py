"""The two-transport test client of tests/doubles/fake_qstash.py, for the unit tests of the hooks module."""

from tests.doubles.fake_qstash import client, fake_qstash, sleeps  # noqa: F401  (fixtures)
