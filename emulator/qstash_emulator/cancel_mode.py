"""The interface of a bulk-cancel server generation (:class:`BulkCancelMode`); the two generations are in
:mod:`qstash_emulator.bulk_cancel`.

Apart from them so that :class:`~qstash_emulator.state.EmulatorState` can name it without importing the
route helpers the generations use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response

from qstash_emulator.actions import ActionStore


class BulkCancelMode(ABC):
    """How a server generation answers ``DELETE /v2/messages`` and the bulk-action routes.

    :param actions: the bulk-action store (shared by both modes, so that the admin API and a
        database file see the same actions whatever the mode).
    """

    #: The ``--bulk-cancel`` value of this mode.
    name: ClassVar[str]

    def __init__(self, actions: ActionStore) -> None:
        self.actions = actions

    def start(self) -> None:  # noqa: B027 - a mode without background work keeps this default
        """Start background work, if any."""

    def close(self) -> None:  # noqa: B027 - a mode without background work keeps this default
        """Stop background work, if any (bounded)."""

    @abstractmethod
    async def cancel(self, request: Request) -> Response:
        """``DELETE /v2/messages``."""

    @abstractmethod
    async def list_actions(self, request: Request) -> Response:
        """``GET /v2/bulkActions``."""

    @abstractmethod
    async def get_action(self, request: Request) -> Response:
        """``GET /v2/bulkActions/{actionId}``."""


__all__ = ["BulkCancelMode"]
