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

Bulk-action faults (a server in ``actions`` mode) come from a second generator, seeded from
the same :attr:`FaultConfig.seed`, which draws exactly three numbers per ``/v2`` request, so
that the sequence above is unchanged by them. For ``DELETE /v2/messages`` only, and used only
when the request is a filter cancel that starts a bulk action:

4. one roll against ``rate_spurious_412`` (answer 412 and start nothing), then
   ``rate_start_lost`` (start the action but answer 429 with no rate-limit headers, as when
   the server's one-minute wait runs out, even for ``async=true``);
5. with probability ``rate_action_partial`` the action finishes ``FINISHED`` with
   ``processed == total`` but cancels only the first ``floor(u * total)`` messages of its
   snapshot (strictly fewer than ``total``; ``u`` a third draw in ``[0, 1)``).

The request log's ``fault`` field names what was applied: ``"412"``, ``"start_lost"`` or
``"action_partial"``.
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
ActionFault = Literal["412", "start_lost"]


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
    :param rate_partial: probability that a synchronous ``DELETE /v2/messages`` (every cancel
        in ``legacy`` mode; a cancel by ``messageIds`` in ``actions`` mode) cancels only part of
        its selection and answers 500. Bulk actions use ``rate_action_partial`` instead.
    :param latency_ms: delay added to every ``/v2`` request, in milliseconds.
    :param seed: seed of the injector's random generator (``None``: a random seed).
    :param reset_after_s: the ``*-Reset`` headers say ``now + reset_after_s`` (whole Unix
        seconds, rounded down); ``0`` means the current second.
    :param burst_limit: value of ``Burst-RateLimit-Limit``.
    :param daily_limit: value of ``RateLimit-Limit``.
    :param statuses_5xx: statuses ``rate_5xx`` picks from (uniformly).
    :param fail_always_status: if set, every ``/v2`` request is answered with this status.
    :param rate_spurious_412: probability that a filter cancel that would start a bulk action
        answers 412 instead, starting nothing.
    :param rate_start_lost: probability that a filter cancel starts its bulk action but answers
        429 without rate-limit headers (the answer is lost; the action runs).
    :param rate_action_partial: probability that a bulk action finishes leaving part of its
        snapshot un-cancelled (``processed`` still reaches ``total``).
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
    rate_spurious_412: float = 0.0
    rate_start_lost: float = 0.0
    rate_action_partial: float = 0.0

    def __post_init__(self) -> None:
        rates = {
            "rate_429": self.rate_429,
            "rate_429_daily": self.rate_429_daily,
            "rate_5xx": self.rate_5xx,
            "rate_drop": self.rate_drop,
            "rate_partial": self.rate_partial,
            "rate_spurious_412": self.rate_spurious_412,
            "rate_start_lost": self.rate_start_lost,
            "rate_action_partial": self.rate_action_partial,
        }
        for name, value in rates.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
        if self.rate_429 + self.rate_429_daily + self.rate_5xx + self.rate_drop > 1.0 + 1e-9:
            raise ValueError("rate_drop + rate_429 + rate_429_daily + rate_5xx must not exceed 1")
        if self.rate_spurious_412 + self.rate_start_lost > 1.0 + 1e-9:
            raise ValueError("rate_spurious_412 + rate_start_lost must not exceed 1")
        if not 0 <= self.latency_ms < float("inf"):
            raise ValueError(f"latency_ms must be a finite number >= 0, got {self.latency_ms!r}")
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
    :param action_fault: for a filter cancel that starts a bulk action: ``"412"`` (start
        nothing, answer 412), ``"start_lost"`` (start it, answer 429 without rate-limit
        headers) or ``None``.
    :param action_partial_fraction: for such a cancel, the fraction of the snapshot the action
        really cancels, or ``None`` for all of it.
    """

    kind: FaultKind | None = None
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    partial_fraction: float | None = None
    action_fault: ActionFault | None = None
    action_partial_fraction: float | None = None

    @property
    def label(self) -> str | None:
        """Name recorded in the request log (``"partial"`` for a partial bulk cancel)."""
        if self.kind is not None:
            return self.kind
        return "partial" if self.partial_fraction is not None else None


NO_FAULT = FaultDecision()


def _rate_limit_headers(prefix: str, limit: int, reset: str) -> dict[str, str]:
    """The headers of a 429 of the rate limit named ``prefix``: none left until ``reset`` (Unix seconds)."""
    return {f"{prefix}-Limit": str(limit), f"{prefix}-Remaining": "0", f"{prefix}-Reset": reset}


class FaultInjector:
    """Thread-safe holder of the active :class:`FaultConfig` and its random generator.

    :param config: initial configuration, or ``None`` for no faults.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config: FaultConfig | None = None
        self._rng = random.Random()
        self._action_rng = random.Random()
        self.configure(config)

    @property
    def config(self) -> FaultConfig | None:
        """The active configuration (``None`` when faults are off)."""
        return self._config

    def configure(self, config: FaultConfig | None) -> None:
        """Replace the configuration and restart the random sequence from its seed."""
        with self._lock:
            self._config = config
            seed = config.seed if config is not None else None
            self._rng = random.Random(seed)
            self._action_rng = random.Random(None if seed is None else f"bulk-actions:{seed}")

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
            action_roll, action_partial_roll, action_fraction = (self._action_rng.random() for _ in range(3))
        latency_s = config.latency_ms / 1000.0
        if config.fail_always_status is not None:
            return FaultDecision(kind="status", status=config.fail_always_status, latency_s=latency_s)
        reset = str(int(time.time() if now is None else now) + config.reset_after_s)
        threshold = config.rate_drop
        if roll < threshold:
            return FaultDecision(kind="drop", latency_s=latency_s)
        threshold += config.rate_429
        if roll < threshold:
            headers = _rate_limit_headers("Burst-RateLimit", config.burst_limit, reset)
            return FaultDecision(kind="429", status=429, headers=headers, latency_s=latency_s)
        threshold += config.rate_429_daily
        if roll < threshold:
            headers = _rate_limit_headers("RateLimit", config.daily_limit, reset)
            return FaultDecision(kind="429_daily", status=429, headers=headers, latency_s=latency_s)
        threshold += config.rate_5xx
        if roll < threshold:
            status = config.statuses_5xx[int(pick * len(config.statuses_5xx))]
            return FaultDecision(kind="5xx", status=status, latency_s=latency_s)
        if method != "DELETE" or path != "/v2/messages":
            return FaultDecision(latency_s=latency_s)
        action_fault: ActionFault | None = None
        if action_roll < config.rate_spurious_412:
            action_fault = "412"
        elif action_roll < config.rate_spurious_412 + config.rate_start_lost:
            action_fault = "start_lost"
        return FaultDecision(
            latency_s=latency_s,
            partial_fraction=fraction if partial_roll < config.rate_partial else None,
            action_fault=action_fault,
            action_partial_fraction=action_fraction if action_partial_roll < config.rate_action_partial else None,
        )
