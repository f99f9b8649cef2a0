"""
The ``qstash`` connection's extra fields, declared once.

The connection reader (:mod:`airflow_qstash.config`) validates extras against this table, and the
connection form is built from it: ``conn-fields`` in :func:`~airflow_qstash.get_provider_info.get_provider_info`
(Airflow 3.2+), and from those the Airflow 2 widgets (:mod:`airflow_qstash.compat`). It imports nothing, so
provider discovery stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Extra:
    """
    One numeric connection extra.

    :param kind: ``int`` or ``float``.
    :param default: used when the extra is missing or blank.
    :param minimum: the smallest value accepted.
    :param maximum: the largest value accepted (every extra is finite).
    :param label: the connection form's label.
    """

    kind: type
    default: float
    minimum: float
    maximum: float
    label: str


#: The numeric extras, in form order.
NUMERIC_EXTRAS: dict[str, Extra] = {
    "timeout": Extra(float, 30.0, 0.001, 3600.0, "Total seconds per request attempt"),
    "max_retries": Extra(int, 5, 0, 100, "Retries on 429, 5xx and network errors"),
    "backoff_initial": Extra(float, 0.5, 0.0, 3600.0, "First retry backoff (seconds)"),
    "backoff_max": Extra(float, 20.0, 0.0, 3600.0, "Longest retry backoff (seconds)"),
    "max_rate_limit_wait": Extra(float, 60.0, 0.0, 86_400.0, "Longest wait for a rate-limit reset (seconds)"),
    "poll_interval_max": Extra(float, 10.0, 0.01, 600.0, "Longest pause between bulk-action polls (seconds)"),
}
ALLOW_INSECURE_HTTP = "allow_insecure_http"
#: The boolean extras and their form labels (all default to false).
BOOLEAN_EXTRAS: dict[str, str] = {
    ALLOW_INSECURE_HTTP: "Allow http:// to a non-loopback host (sends the token in clear text)",
}

PROXY = "proxy"
#: The text extras and their form labels (blank = not set); shown as password fields (a proxy URL may hold
#: a user and password).
SECRET_TEXT_EXTRAS: dict[str, str] = {
    PROXY: "HTTPS proxy URL (http(s)://[user:password@]host:port; never used for http:// or loopback hosts)",
}


def conn_fields() -> dict[str, Any]:
    """The ``conn-fields`` of the provider info: one JSON-schema field per extra, blank meaning the default."""
    fields: dict[str, Any] = {}
    for name, extra in NUMERIC_EXTRAS.items():
        kind = "integer" if extra.kind is int else "number"
        default = extra.kind(extra.default)
        schema = {"type": [kind, "null"], "default": default, "minimum": extra.minimum, "maximum": extra.maximum}
        fields[name] = {"label": extra.label, "schema": schema}
    for name, label in BOOLEAN_EXTRAS.items():
        fields[name] = {"label": label, "schema": {"type": ["boolean", "null"], "default": False}}
    for name, label in SECRET_TEXT_EXTRAS.items():
        fields[name] = {"label": label, "schema": {"type": ["string", "null"], "format": "password"}}
    return fields
