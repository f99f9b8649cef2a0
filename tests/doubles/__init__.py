"""
Doubles of the QStash server for the tests that do not run the emulator.

- :mod:`tests.doubles.fake_qstash`: the scripted fake (answers per route, in order) behind either hook; the
  ``client`` fixture of ``tests/unit/hooks`` runs a hook method on both transports against it.
- :mod:`tests.doubles.pending_messages`: a ``DELETE /v2/messages`` over ``pending`` messages (the operator's
  and the trigger's tests).
- :mod:`tests.doubles.fake_dlq`: a stateful dead-letter queue (both API generations), for the DLQ unit tests.
- :mod:`tests.doubles.harness`: the lowest-layer transport double of the property tests (no socket opens).
- :mod:`tests.doubles.transports`: where a double meets the async hook's client.

Everything that needs the real API's behaviour (bulk actions over time, faults, the spec's shapes) runs
against the emulator (``qstash_emulator``) instead.
"""
