"""
Doubles of the QStash server for the tests that do not run the emulator.

- :mod:`tests.doubles.fake_qstash`: the one scripted fake, :class:`FakeQStash` (answers per route, in order,
  behind either hook: ``serve`` for operators and triggers, the ``client`` fixture of ``tests/unit/hooks`` for
  hook methods), and its route sets: ``BulkActions`` (today's bulk actions), ``PendingMessages`` (the older
  synchronous ``DELETE /v2/messages``), ``FakeDLQ`` (a stateful dead-letter queue, both API generations).
- :mod:`tests.doubles.harness`: the lowest-layer transport double of the property tests (no socket opens).
- :mod:`tests.doubles.transports`: where a double meets the async hook's client.

Everything that needs the real API's behaviour (bulk actions over time, faults, the spec's shapes) runs
against the emulator (``qstash_emulator``) instead.
"""
