"""Reproducible synthetic messages for demos, tests and benchmarks.

The distribution (same ``seed`` -> same messages, apart from ids when the store
already holds messages, and ``createdAt`` which is relative to ``now``):

* labels: 20 % none, 65 % one of ``label-0`` .. ``label-9``, 15 % two distinct ones;
* queues: 60 % one of ``queue-0`` .. ``queue-4``, else none;
* URL groups: 15 % ``group-0`` .. ``group-2`` (``topicName``), else none;
* destinations: hosts ``api.example.com``, ``hooks.example.com``,
  ``worker.example.net:8443``, paths ``/``, ``/webhook``, ``/jobs/sync``,
  ``/jobs/email``, ``/v1/events``, ``url = https://{host}{path}``;
* flow-control keys: 30 % ``fck-0`` .. ``fck-7``; schedule ids: 10 % ``scd-00`` .. ``scd-19``;
* caller IPs: one of eight documentation addresses (``203.0.113.1`` .. ``203.0.113.8``);
* ``createdAt``: uniform over the 30 days before ``now_ms``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from qstash_emulator.records import NewMessage, now_ms

LABELS: tuple[str, ...] = tuple(f"label-{i}" for i in range(10))
QUEUES: tuple[str, ...] = tuple(f"queue-{i}" for i in range(5))
URL_GROUPS: tuple[str, ...] = tuple(f"group-{i}" for i in range(3))
HOSTS: tuple[str, ...] = ("api.example.com", "hooks.example.com", "worker.example.net:8443")
PATHS: tuple[str, ...] = ("/", "/webhook", "/jobs/sync", "/jobs/email", "/v1/events")
FLOW_CONTROL_KEYS: tuple[str, ...] = tuple(f"fck-{i}" for i in range(8))
SCHEDULE_IDS: tuple[str, ...] = tuple(f"scd-{i:02d}" for i in range(20))
CALLER_IPS: tuple[str, ...] = tuple(f"203.0.113.{i}" for i in range(1, 9))
WINDOW_MS = 30 * 24 * 3600 * 1000


def generate_messages(n: int, seed: int = 0, *, now: int | None = None, id_salt: int = 0) -> Iterator[NewMessage]:
    """Yield ``n`` synthetic messages.

    :param n: how many.
    :param seed: seed of the distribution.
    :param now: reference time in Unix ms (default: now); ``createdAt`` lies in the 30 days before.
    :param id_salt: mixed into the id generator so that seeding the same ``seed`` twice into
        one store does not produce duplicate ids (the store passes its current size).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    ids = random.Random(f"ids:{seed}:{id_salt}")
    reference = now_ms() if now is None else now
    rand = rng.random  # int(rand() * k) is several times faster than randrange(k)
    bits = ids.getrandbits
    for _ in range(n):
        r = rand()
        if r < 0.20:
            labels: tuple[str, ...] = ()
        elif r < 0.85:
            labels = (LABELS[int(rand() * 10)],)
        else:
            first = int(rand() * 10)
            second = (first + 1 + int(rand() * 9)) % 10
            labels = (LABELS[first], LABELS[second])
        host = HOSTS[int(rand() * 3)]
        path = PATHS[int(rand() * 5)]
        yield NewMessage(
            f"msg_{bits(128):032x}",
            f"https://{host}{path}",
            host,
            path,
            URL_GROUPS[int(rand() * 3)] if rand() < 0.15 else None,
            QUEUES[int(rand() * 5)] if rand() < 0.60 else None,
            labels,
            FLOW_CONTROL_KEYS[int(rand() * 8)] if rand() < 0.30 else None,
            SCHEDULE_IDS[int(rand() * 20)] if rand() < 0.10 else None,
            CALLER_IPS[int(rand() * 8)],
            "POST",
            None,
            reference - int(rand() * WINDOW_MS),
        )
