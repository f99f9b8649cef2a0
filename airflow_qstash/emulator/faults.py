"""Fault injection for the QStash emulator's ``/v2`` routes.

Every ``/v2`` request draws exactly four numbers from the injector's own
:class:`random.Random` (seeded by :attr:`FaultConfig.seed`), whatever the
outcome, so that a sequence of requests replays identically with the same seed.

Outcomes, checked in this order:

1. ``fail_always_status``: every request is answered with that status and ``{"error": ...}``.
2. One roll ``r`` in ``[0, 1)`` against the cumulative rates, in this order:
   ``rate_drop`` (the TCP connection is closed without a response),
   ``rate_429`` (burst limit: ``Burst-RateLimit-*`` headers),
   ``rate_429_daily`` (daily limit: ``RateLimit-*`` headers),
   ``rate_5xx`` (a status drawn from ``statuses_5xx``).
3. For ``DELETE /v2/messages`` only, when nothing above fired: with probability
   ``rate_partial`` the bulk cancel stops part-way, cancelling
   ``floor(u * selected)`` messages (``u`` a fourth draw in ``[0, 1)``, so strictly
   fewer than selected) and answering 500 ``{"error": "failed to cancel message ..."}``.

``latency_ms`` is added (``asyncio.sleep``) before every ``/v2`` answer, dropped
connections included.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "drop", "429", "429_daily", "5xx"]


@dataclass(frozen=True)
class FaultConfig:
    """What faults to inject, and how often.

    :param rate_429: probability that a ``/v2`` request is answered 429 with the burst
        rate-limit headers ``Burst-RateLimit-Limit``, ``Burst-RateLimit-Remaining: 0`` and
        ``Burst-RateLimit-Reset`` (Unix seconds when the window resets).
    :param rate_429_daily: probability of a 429 with the daily headers ``RateLimit-Limit``,
        ``RateLimit-Remaining: 0`` and ``RateLimit-Reset`` (Unix seconds) instead.
    :param rate_5xx: probability of a server error, status drawn from ``statuses_5xx``.
    :param rate_drop: probability that the connection is closed with no response.
    :param rate_partial: probability that a ``DELETE /v2/messages`` cancels only part of its
        selection and answers 500.
    :param latency_ms: delay added to every ``/v2`` request, in milliseconds.
    :param seed: seed of the injector's random generator (``None``: a random seed).
    :param reset_after_s: the ``*-Reset`` headers say ``now + reset_after_s`` (whole Unix
        seconds, rounded down); ``0`` means the current second.
    :param burst_limit: value of ``Burst-RateLimit-Limit``.
    :param daily_limit: value of ``RateLimit-Limit``.
    :param statuses_5xx: statuses ``rate_5xx`` picks from (uniformly).
    :param fail_always_status: if set, every ``/v2`` request is answered with this status.
    """

    rate_429: float = 0.0
    rate_429_daily: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_partial: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = 0
    reset_after_s: int = 1
    burst_limit: int = 100
    daily_limit: int = 500_000
    statuses_5xx: tuple[int, ...] = field(default=(503, 500))
    fail_always_status: int | None = None

    def __post_init__(self) -> None:
        rates = {
            "rate_429": self.rate_429,
            "rate_429_daily": self.rate_429_daily,
            "rate_5xx": self.rate_5xx,
            "rate_drop": self.rate_drop,
            "rate_partial": self.rate_partial,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.rate_429 + self.rate_429_daily + self.rate_5xx + self.rate_drop > 1.0 + 1e-9:
            raise ValueError("rate_drop + rate_429 + rate_429_daily + rate_5xx must not exceed 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.reset_after_s < 0:
            raise ValueError("reset_after_s must be >= 0")
        statuses = tuple(self.statuses_5xx)
        if not statuses or not all(500 <= s <= 599 for s in statuses):
            raise ValueError("statuses_5xx must be a non-empty list of 5xx statuses")
        object.__setattr__(self, "statuses_5xx", statuses)
        if self.fail_always_status is not None and not 400 <= self.fail_always_status <= 599:
            raise ValueError("fail_always_status must be a 4xx or 5xx status")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the body of ``PUT /_emulator/faults``)."""
        data = dataclasses.asdict(self)
        data["statuses_5xx"] = list(self.statuses_5xx)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON dict; unknown keys are refused.

        :raises ValueError: on an unknown key or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ValueError("fault config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault config keys: {sorted(unknown)}")
        kwargs = dict(data)
        if "statuses_5xx" in kwargs:
            kwargs["statuses_5xx"] = tuple(kwargs["statuses_5xx"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class FaultDecision:
    """What the injector decided for one request.

    :param kind: the fault to answer with, or ``None`` to serve the request.
    :param status: HTTP status for ``status``, ``429``, ``429_daily`` and ``5xx``.
    :param headers: extra response headers (rate-limit headers of a 429).
    :param latency_s: delay before answering, in seconds.
    :param partial_fraction: for a bulk cancel, the fraction of the selection to cancel before
        failing, or ``None`` for no partial failure.
    """

    kind: FaultKind | None = None
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    partial_fraction: float | None = None

    @property
    def label(self) -> str | None:
        """Name recorded in the request log (``"partial"`` for a partial bulk cancel)."""
        if self.kind is not None:
            return self.kind
        return "partial" if self.partial_fraction is not None else None


NO_FAULT = FaultDecision()


class FaultInjector:
    """Thread-safe holder of the active :class:`FaultConfig` and its random generator.

    :param config: initial configuration, or ``None`` for no faults.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config: FaultConfig | None = None
        self._rng = random.Random()
        self.configure(config)

    @property
    def config(self) -> FaultConfig | None:
        """The active configuration (``None`` when faults are off)."""
        return self._config

    def configure(self, config: FaultConfig | None) -> None:
        """Replace the configuration and restart the random sequence from its seed."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed if config is not None else None)

    def decide(self, method: str, path: str, *, now: float | None = None) -> FaultDecision:
        """Decide the fault for one ``/v2`` request.

        :param method: HTTP method.
        :param path: request path.
        :param now: current Unix time in seconds (for the reset headers; default ``time.time()``).
        """
        with self._lock:
            config = self._config
            if config is None:
                return NO_FAULT
            roll, pick, partial_roll, fraction = (self._rng.random() for _ in range(4))
        latency_s = config.latency_ms / 1000.0
        if config.fail_always_status is not None:
            return FaultDecision(kind="status", status=config.fail_always_status, latency_s=latency_s)
        reset = str(int(time.time() if now is None else now) + config.reset_after_s)
        threshold = config.rate_drop
        if roll < threshold:
            return FaultDecision(kind="drop", latency_s=latency_s)
        threshold += config.rate_429
        if roll < threshold:
            headers = {
                "Burst-RateLimit-Limit": str(config.burst_limit),
                "Burst-RateLimit-Remaining": "0",
                "Burst-RateLimit-Reset": reset,
            }
            return FaultDecision(kind="429", status=429, headers=headers, latency_s=latency_s)
        threshold += config.rate_429_daily
        if roll < threshold:
            headers = {
                "RateLimit-Limit": str(config.daily_limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": reset,
            }
            return FaultDecision(kind="429_daily", status=429, headers=headers, latency_s=latency_s)
        threshold += config.rate_5xx
        if roll < threshold:
            status = config.statuses_5xx[int(pick * len(config.statuses_5xx))]
            return FaultDecision(kind="5xx", status=status, latency_s=latency_s)
        if method == "DELETE" and path == "/v2/messages" and partial_roll < config.rate_partial:
            return FaultDecision(latency_s=latency_s, partial_fraction=fraction)
        return FaultDecision(latency_s=latency_s)
