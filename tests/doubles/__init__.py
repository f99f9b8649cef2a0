"""
Doubles of the QStash server for the tests that do not run the emulator: one scripted fake, and the two places
where it meets the hooks' transports.

- :mod:`tests.doubles.fake_qstash`: the scripted fake, :class:`FakeQStash` (answers per route, in order, the
  last one repeated; every request recorded), behind either hook (``serve`` for operators and triggers, the
  ``client`` fixture of ``tests/unit/hooks`` for hook methods), and its route sets, each a :class:`FakeQStash`
  with some routes answered from a little state:

  - ``BulkActions``: today's bulk actions (starts counted, 412 while an identical one runs, polls that
    progress; or an ``outcome`` script for a server whose counts lie), for the runs, durable and loop tests;
  - ``PendingMessages``: the older, synchronous ``DELETE /v2/messages`` over ``pending`` messages, for the
    bulk-cancel operator's and trigger's tests;
  - ``FakeDLQ``: a stateful dead-letter queue (both API generations), for the DLQ hooks, runs, operators and
    triggers;
  - ``Rounds``: every route at once, acting in a first round and never after (with hostile answers first),
    for the input properties.

- :mod:`tests.doubles.transports`: where the fake meets the async hook's client (``route_async_hook``).
- :mod:`tests.doubles.harness`: the input properties' transport double and their checks. It stays apart because
  it patches the lowest layer (httpx's transport, requests-mock, ``socket.connect``) instead of the async
  hook's client, so the properties see the hooks build their own clients (base URL, proxies, timeouts); what
  answers there is the same :class:`FakeQStash`.

Everything that needs the real API's behaviour (bulk actions over time, faults, the spec's shapes) runs
against the emulator (``qstash_emulator``) instead.
"""
