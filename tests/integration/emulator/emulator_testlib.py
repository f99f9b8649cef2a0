"""Helpers shared by the emulator tests (a plain module: conftest modules are not importable)."""

from __future__ import annotations

from typing import Any

import requests

from qstash_emulator import QStashEmulator

TOKEN = "test-token"


class Api:
    """Tiny ``requests`` helper bound to one emulator."""

    def __init__(self, emu: QStashEmulator) -> None:
        self.emu = emu
        self.base_url = emu.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {emu.token}"

    def cancel(self, params: Any = None, **kwargs: Any) -> requests.Response:
        """``DELETE /v2/messages`` with ``params`` (dict or list of pairs)."""
        kwargs.setdefault("timeout", 10)
        return self.session.delete(self.base_url + "/v2/messages", params=params, **kwargs)

    def cancelled(self, params: Any = None) -> int:
        """Bulk cancel and return ``cancelled`` (asserting a 200)."""
        response = self.cancel(params)
        assert response.status_code == 200, response.text
        count: int = response.json()["cancelled"]
        return count

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)
