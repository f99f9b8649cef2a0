"""The OpenAPI 3.1 description of the emulator's admin API (``/_emulator/...``), served by the emulator itself at
``GET /_emulator/openapi.json``.

The admin API needs no token, is not logged and never meets an injected fault. ``tests/emulator`` checks that
every admin route the app has is described here with its methods (and nothing else), that the document is a
valid OpenAPI 3.1 description, and that the answers of the routes match it.
"""

from __future__ import annotations

from typing import Any

from qstash_emulator.query import ADMIN_STATES, COUNT_BY

_INT = {"type": "integer"}
_STR = {"type": "string"}
_MS = {"type": "integer", "minimum": 0, "description": "Unix milliseconds"}
_STR_LIST = {"type": "array", "items": _STR}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], description: str, example: Any) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


_ERROR = _json(_ref("Error"), "the body or a parameter is refused: the message says what to send")

#: ``label``, ``queue``, ``from``, ``to`` and ``state``: the filter of the admin listing and counts.
_FILTER_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "state",
        "in": "query",
        "description": "which messages (default held)",
        "schema": {"type": "string", "enum": list(ADMIN_STATES), "default": "held"},
    },
    {
        "name": "label",
        "in": "query",
        "description": "messages with any of these labels (repeat the parameter or separate with commas)",
        "schema": _STR,
    },
    {
        "name": "queue",
        "in": "query",
        "description": "messages in any of these queues (repeat the parameter or separate with commas)",
        "schema": _STR,
    },
    {
        "name": "from",
        "in": "query",
        "description": "created at or after: Unix ms, or ISO 8601 with a timezone (2025-12-05T04:00:00Z)",
        "schema": _STR,
    },
    {
        "name": "to",
        "in": "query",
        "description": "created at or before (inclusive): Unix ms, or ISO 8601 with a timezone",
        "schema": _STR,
    },
]
_LIMIT = {
    "name": "limit",
    "in": "query",
    "description": "at most this many",
    "schema": {"type": "integer", "minimum": 0},
}

_NEW_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "description": "destination, an absolute http(s) URL (never called)"},
        "labels": _STR_LIST,
        "label": {"type": "string", "description": "one label, or several separated by commas"},
        "queueName": _STR,
        "topicName": {"type": "string", "description": "URL group"},
        "flowControlKey": _STR,
        "scheduleId": _STR,
        "callerIp": _STR,
        "callerIP": {"type": "string", "description": "older spelling of callerIp"},
        "createdAt": {**_MS, "description": "Unix milliseconds (default: now)"},
        "messageId": {"type": "string", "description": "default: a new msg_... id"},
        "method": {"type": "string", "default": "POST"},
        "body": _STR,
        "maxRetries": {"type": "integer", "minimum": 0, "maximum": 1000},
        "header": {"type": "object", "additionalProperties": _STR_LIST},
        "upstashHeaders": {"type": "object", "additionalProperties": _STR},
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
    "NewMessage": _NEW_MESSAGE,
    "NewDlqEntry": {
        "allOf": [
            {**_NEW_MESSAGE, "additionalProperties": True},
            {
                "type": "object",
                "required": ["responseStatus"],
                "properties": {
                    "responseStatus": {"type": "integer", "minimum": 100, "maximum": 599},
                    "responseBody": _STR,
                    "responseHeader": {"type": "object", "additionalProperties": _STR_LIST},
                    "dlqId": {"type": "string", "description": "default: a new dlq_... id"},
                },
            },
        ]
    },
    "Message": {
        "type": "object",
        "description": "the API's Message plus where it goes and its state",
        "required": ["messageId", "url", "method", "createdAt", "state"],
        "properties": {
            "messageId": _STR,
            "url": _STR,
            "method": _STR,
            "createdAt": _MS,
            "maxRetries": _INT,
            "labels": _STR_LIST,
            "label": _STR,
            "queueName": _STR,
            "topicName": _STR,
            "host": _STR,
            "path": _STR,
            "state": {"type": "string", "enum": ["held", "cancelled"]},
            "cancelledAt": {"type": ["integer", "null"]},
        },
    },
    "DlqEntry": {
        "type": "object",
        "required": ["dlqId", "messageId", "url", "createdAt", "responseStatus"],
        "properties": {
            "dlqId": _STR,
            "messageId": _STR,
            "url": _STR,
            "createdAt": _MS,
            "responseStatus": _INT,
            "responseBody": _STR,
            "labels": _STR_LIST,
        },
    },
    "Seed": {
        "type": "object",
        "required": ["count"],
        "additionalProperties": False,
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
            "seed": {"type": "integer", "default": 0, "description": "same seed, same messages"},
            "now": {**_MS, "description": "reference time: createdAt lies in the 30 days before (default: now)"},
        },
    },
    "Seeded": {"type": "object", "required": ["seeded"], "properties": {"seeded": {"type": "integer", "minimum": 1}}},
    "Fail": {
        "type": "object",
        "required": ["messageIds"],
        "additionalProperties": False,
        "properties": {
            "messageIds": {"type": "array", "items": _STR, "minItems": 1},
            "responseStatus": {"type": "integer", "minimum": 100, "maximum": 599, "default": 500},
            "responseBody": _STR,
        },
    },
    "Counts": {
        "type": "object",
        "required": ["by", "counts", "total"],
        "properties": {
            "by": {"type": "string", "enum": list(COUNT_BY)},
            "counts": {
                "type": "array",
                "description": "one row per key (a label, queue or state; null: none), sorted, null last; a "
                "message with two labels counts under each",
                "items": {
                    "type": "object",
                    "required": ["held", "cancelled", "total"],
                    "properties": {
                        "label": {"type": ["string", "null"]},
                        "queue": {"type": ["string", "null"]},
                        "state": {"type": "string"},
                        "held": _INT,
                        "cancelled": _INT,
                        "total": _INT,
                    },
                },
            },
            "total": {
                "type": "object",
                "description": "every selected message once",
                "required": ["held", "cancelled", "total"],
                "properties": {"held": _INT, "cancelled": _INT, "total": _INT},
            },
        },
    },
    "RequestLogEntry": {
        "type": "object",
        "required": ["method", "path", "query", "authorized", "status"],
        "properties": {
            "method": _STR,
            "path": {"type": "string", "description": "at most 200 characters without a valid token"},
            "query": {
                "type": "array",
                "description": "name/value pairs, credentials redacted as ***; empty without a valid token",
                "items": {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2},
            },
            "authorized": {"type": "boolean"},
            "queryOmitted": {"type": "boolean", "description": "the entry alone exceeded the log's byte bound"},
            "status": {"type": ["integer", "null"]},
            "time": {"type": "number"},
            "durationMs": {"type": ["number", "null"]},
            "storeMs": {"type": ["number", "null"]},
            "storeCpuMs": {"type": ["number", "null"]},
            "fault": {"type": ["string", "null"]},
        },
    },
    "FaultConfig": {
        "type": ["object", "null"],
        "description": "null: no fault. Rates are shares of /v2 requests (0..1).",
        "additionalProperties": False,
        "properties": {
            **{
                name: {"type": "number", "minimum": 0, "maximum": 1}
                for name in (
                    "rate_429",
                    "rate_429_daily",
                    "rate_5xx",
                    "rate_drop",
                    "rate_partial",
                    "rate_spurious_412",
                    "rate_start_lost",
                    "rate_action_partial",
                )
            },
            "latency_ms": {"type": "number", "minimum": 0},
            "seed": {"type": ["integer", "null"]},
            "reset_after_s": _INT,
            "burst_limit": _INT,
            "daily_limit": _INT,
            "statuses_5xx": {"type": "array", "items": _INT},
            "fail_always_status": {"type": ["integer", "null"]},
        },
    },
}

_IDS = {"type": "object", "required": ["messageIds"], "properties": {"messageIds": _STR_LIST}}
_DLQ_IDS = {"type": "object", "required": ["dlqIds"], "properties": {"dlqIds": _STR_LIST}}
_ONE_MESSAGE = [{"url": "https://example.com/hook", "labels": ["billing"], "createdAt": 1764907200000}]

_PATHS: dict[str, Any] = {
    "/_emulator/health": {
        "get": {
            "summary": "Whether the emulator answers",
            "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "it does")},
        }
    },
    "/_emulator/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "the admin API's OpenAPI description")},
        }
    },
    "/_emulator/messages": {
        "post": {
            "summary": "Hold your own messages (never delivered)",
            "requestBody": _body(
                {
                    "oneOf": [
                        {"type": "array", "items": _ref("NewMessage"), "minItems": 1},
                        {
                            "type": "object",
                            "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": _ref("NewMessage"), "minItems": 1}},
                        },
                    ]
                },
                'a non-empty list of messages (or {"messages": [...]})',
                _ONE_MESSAGE,
            ),
            "responses": {"200": _json(_IDS, "their ids, in order"), "400": _ERROR},
        },
        "get": {
            "summary": "The messages the filter selects, in insertion order",
            "parameters": [*_FILTER_PARAMETERS, _LIMIT],
            "responses": {"200": _json({"type": "array", "items": _ref("Message")}, "the messages"), "400": _ERROR},
        },
    },
    "/_emulator/message-ids": {
        "get": {
            "summary": "Just the ids the filter selects, sorted",
            "parameters": _FILTER_PARAMETERS,
            "responses": {"200": _json(_STR_LIST, "the ids"), "400": _ERROR},
        }
    },
    "/_emulator/counts": {
        "get": {
            "summary": "How many of the selected messages are held and cancelled, by label, queue or state",
            "parameters": [
                *_FILTER_PARAMETERS,
                {"name": "by", "in": "query", "schema": {"type": "string", "enum": list(COUNT_BY), "default": "label"}},
            ],
            "responses": {"200": _json(_ref("Counts"), "the counts"), "400": _ERROR},
        }
    },
    "/_emulator/stats": {
        "get": {
            "summary": "Totals of held and cancelled messages",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["held", "cancelled"],
                        "properties": {"held": _INT, "cancelled": _INT},
                    },
                    "the totals",
                )
            },
        }
    },
    "/_emulator/seed": {
        "post": {
            "summary": "Generate messages: labels label-0..label-9, queues queue-0..queue-4, createdAt spread over the "
            "30 days before now",
            "requestBody": _body(_ref("Seed"), "how many, and the seed", {"count": 1000, "seed": 1}),
            "responses": {
                "200": _json(_ref("Seeded"), "how many were made"),
                "400": _ERROR,
                "409": _json(_ref("Error"), "a generated id collides with a stored one"),
            },
        }
    },
    "/_emulator/dlq": {
        "post": {
            "summary": "Put your own entries in the DLQ (as if their retries were exhausted)",
            "requestBody": _body(
                {
                    "oneOf": [
                        {"type": "array", "items": _ref("NewDlqEntry"), "minItems": 1},
                        {
                            "type": "object",
                            "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": _ref("NewDlqEntry"), "minItems": 1}},
                        },
                    ]
                },
                "a non-empty list of entries: a message plus responseStatus",
                [{**_ONE_MESSAGE[0], "responseStatus": 500, "responseBody": "upstream failed"}],
            ),
            "responses": {"200": _json(_DLQ_IDS, "their DLQ ids, in order"), "400": _ERROR},
        },
        "get": {
            "summary": "The DLQ's entries in insertion order",
            "parameters": [_LIMIT],
            "responses": {"200": _json({"type": "array", "items": _ref("DlqEntry")}, "the entries"), "400": _ERROR},
        },
    },
    "/_emulator/dlq/seed": {
        "post": {
            "summary": "Generate DLQ entries (responseStatus drawn from 400, 404, 429, 500, 502, 503, 504)",
            "requestBody": _body(_ref("Seed"), "how many, and the seed", {"count": 100, "seed": 1}),
            "responses": {"200": _json(_ref("Seeded"), "how many were made"), "400": _ERROR},
        }
    },
    "/_emulator/dlq/count": {
        "get": {
            "summary": "How many DLQ entries",
            "responses": {
                "200": _json({"type": "object", "required": ["dlq"], "properties": {"dlq": _INT}}, "the count")
            },
        }
    },
    "/_emulator/fail": {
        "post": {
            "summary": "Move held messages to the DLQ with a response status",
            "requestBody": _body(
                _ref("Fail"),
                "which messages, and the answer their destination gave",
                {"messageIds": ["msg_..."], "responseStatus": 503},
            ),
            "responses": {"200": _json(_DLQ_IDS, "their DLQ ids"), "400": _ERROR},
        }
    },
    "/_emulator/requests": {
        "get": {
            "summary": "The /v2 requests answered so far (bounded in count and bytes)",
            "responses": {"200": _json({"type": "array", "items": _ref("RequestLogEntry")}, "oldest first")},
        },
        "delete": {
            "summary": "Forget them",
            "responses": {"200": _json({"type": "object", "properties": {"cleared": {"const": True}}}, "done")},
        },
    },
    "/_emulator/faults": {
        "get": {"summary": "The fault configuration", "responses": {"200": _json(_ref("FaultConfig"), "it")}},
        "put": {
            "summary": "Set the fault configuration (null: off)",
            "requestBody": _body(_ref("FaultConfig"), "the configuration", {"rate_5xx": 0.2, "seed": 1}),
            "responses": {"200": _json(_ref("FaultConfig"), "what is now set"), "400": _ERROR},
        },
    },
    "/_emulator/bulk-actions": {
        "get": {
            "summary": "Every bulk action, oldest first",
            "responses": {
                "200": _json(
                    {"type": "array", "items": {"type": "object"}}, "the actions with cancelled and cancelLimit"
                )
            },
        }
    },
    "/_emulator/reset": {
        "post": {
            "summary": "Empty everything, initial faults back",
            "responses": {"200": _json({"type": "object", "properties": {"reset": {"const": True}}}, "done")},
        }
    },
}

#: The admin API's OpenAPI document.
ADMIN_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "QStash emulator admin API",
        "version": "1",
        "description": "Seed, inspect and steer the local QStash emulator. No token; not logged; no faults. "
        "The QStash routes (/v2/...) are those of Upstash QStash.",
    },
    "paths": _PATHS,
    "components": {"schemas": _SCHEMAS},
}

__all__ = ["ADMIN_OPENAPI"]
