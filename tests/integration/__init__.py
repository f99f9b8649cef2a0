"""Tests that need a real server process or the whole system: the emulator's own tests, end-to-end DAG runs,
live Airflow, reliability soaks, property tests, the official SDK against the emulator, the docs walkthrough."""
