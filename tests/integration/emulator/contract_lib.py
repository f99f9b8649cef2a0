"""Helpers of the contract tests: the vendored spec, the bulk-actions overlay, request re-targeting.

The spec is ``tests/spec/qstash-openapi.yaml`` (upstash/docs@ef0ce438, 2026-08-21). The overlay
``tests/spec/qstash-bulk-actions-overlay.yaml`` describes the September 2026 bulk-action contract;
:func:`apply_overlay` merges it with one documented rule (see its docstring and the overlay's header).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS31Validator

from qstash_emulator import QStashEmulator

SPEC_DIR = Path(__file__).resolve().parents[2] / "spec"
SPEC_PATH = SPEC_DIR / "qstash-openapi.yaml"
OVERLAY_PATH = SPEC_DIR / "qstash-bulk-actions-overlay.yaml"
SPEC_SERVER = "https://qstash-eu-central-1.upstash.io"

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML document as a dict."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def apply_overlay(spec: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """The spec with the overlay merged in (neither argument is changed).

    * a path or an operation the spec lacks is added as the overlay writes it;
    * for an operation both have, each overlay parameter replaces the spec's parameter with the
      same ``name`` and ``in`` (or is appended), and each overlay response replaces or adds that status;
    * ``components.schemas`` of the overlay are added to (or replace) the spec's.
    """
    merged = copy.deepcopy(spec)
    paths = merged.setdefault("paths", {})
    for path, item in overlay.get("paths", {}).items():
        target = paths.setdefault(path, {})
        for method, operation in item.items():
            if method not in _METHODS or method not in target:
                target[method] = copy.deepcopy(operation)
                continue
            existing = target[method]
            params = existing.setdefault("parameters", [])
            for param in operation.get("parameters", []):
                key = (param["name"], param["in"])
                params[:] = [p for p in params if (p.get("name"), p.get("in")) != key]
                params.append(copy.deepcopy(param))
            existing.setdefault("responses", {}).update(copy.deepcopy(operation.get("responses", {})))
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(copy.deepcopy(overlay.get("components", {}).get("schemas", {})))
    return merged


def as_spec_request(emu: QStashEmulator, response: requests.Response) -> RequestsOpenAPIRequest:
    """The request of ``response``, moved onto the spec's server so openapi-core finds the operation."""
    prepared = response.request.copy()
    assert prepared.url is not None and prepared.url.startswith(emu.base_url)
    prepared.url = SPEC_SERVER + prepared.url[len(emu.base_url) :]
    return RequestsOpenAPIRequest(prepared)


def assert_documented(openapi: OpenAPI, emu: QStashEmulator, response: requests.Response, status: int) -> None:
    """The request of ``response`` is valid for the spec, and the answer has ``status`` and is the documented one."""
    request = as_spec_request(emu, response)
    openapi.validate_request(request)
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    openapi.validate_response(request, RequestsOpenAPIResponse(response))


def check_response(
    openapi: OpenAPI, spec_dict: dict[str, Any], request: RequestsOpenAPIRequest, response: requests.Response
) -> None:
    """Validate against the operation's documented response, or against ``Error`` if undocumented."""
    try:
        openapi.validate_response(request, RequestsOpenAPIResponse(response))
    except ResponseNotFound:
        assert response.status_code >= 400, f"undocumented success status {response.status_code}"
        assert response.headers["content-type"].startswith("application/json")
        OAS31Validator(spec_dict["components"]["schemas"]["Error"]).validate(response.json())


def request_is_valid(openapi: OpenAPI, request: RequestsOpenAPIRequest) -> bool:
    """Whether openapi-core finds nothing wrong with the request."""
    return not list(openapi.iter_request_errors(request))
