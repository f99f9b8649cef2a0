"""
Everything that differs between the Airflow versions this provider supports (2.11, 3.0, 3.1, 3.2, 3.3).

The rest of the package imports Airflow names through ``airflow.providers.common.compat`` and the pieces
below, and checks no version itself. What differs:

=====================================  ==========================  =========================================
piece                                  where it exists             what older versions get here
=====================================  ==========================  =========================================
``conn-fields`` / ``ui-field-behav``   read by Airflow 3.2+        :func:`connection_form_widgets` and
(provider info)                                                    :func:`ui_field_behaviour`, built from the
                                                                   same declaration (2.11, and 3.0/3.1 with
                                                                   WTForms installed)
``BaseHook.aget_connection``           3.1+ (async masking 3.3.2)  :func:`get_async_connection`:
                                                                   common-compat's, which reads the
                                                                   connection in a worker thread
``airflow.sdk.log.amask_secret``       3.3+                        :func:`amask_secret`: ``mask_secret`` in a
                                                                   worker thread
=====================================  ==========================  =========================================

Names that pull in much of Airflow (connections) are resolved on first use, so importing this
module costs a DAG file nothing.

What needs no entry here: DAG files import ``DAG`` and ``Param`` from ``airflow.providers.common.compat.sdk``
and ``CronDataIntervalTimetable`` from ``airflow.timetables.interval``, a path every supported version has
(3.2's ``airflow.sdk`` copy lacks ``infer_manual_data_interval``, which the DAG tests use).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

__all__ = [
    "amask_secret",
    "connection_form_widgets",
    "get_async_connection",
    "get_async_extra_dejson",
    "ui_field_behaviour",
]


#: Lazily imported names: the module each comes from on the running Airflow.
_LAZY_IMPORTS: dict[str, str] = {
    # Airflow < 3.3.2 masks secrets synchronously in ``aget_connection``/``extra_dejson``: these read the
    # connection and its extras in a worker thread there, and the async way on 3.3.2+.
    "get_async_connection": "airflow.providers.common.compat.connection",
    "get_async_extra_dejson": "airflow.providers.common.compat.connection",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_IMPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


async def amask_secret(secret: str, name: str | None = None) -> None:
    """
    Register ``secret`` with Airflow's secrets masker without blocking the event loop.

    Airflow 3.3+ has an async masker (it tells the supervisor with ``asend``); before that ``mask_secret``
    may block on the supervisor, so it runs in a worker thread.

    :param secret: the value to mask in every log and rendered field.
    :param name: the connection field or key it came from, if any.
    """
    try:
        from airflow.sdk.log import amask_secret as sdk_amask_secret
    except ImportError:
        from airflow.providers.common.compat.sdk import mask_secret

        await asyncio.to_thread(mask_secret, secret, name)
    else:
        await sdk_amask_secret(secret, name)


# --------------------------------------------------------------------------- the connection form


def _connection_type_info(conn_type: str) -> Mapping[str, Any]:
    from airflow_qstash.get_provider_info import get_provider_info

    for info in get_provider_info()["connection-types"]:
        if info["connection-type"] == conn_type:
            return info
    raise ValueError(f"This provider declares no connection type {conn_type!r}.")


def _schema_type(name: str, schema: Mapping[str, Any]) -> tuple[str, bool]:
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    kinds = [kind for kind in types if kind != "null"]
    if len(kinds) != 1:
        raise ValueError(f"conn-fields {name!r}: give the schema exactly one type besides 'null', not {declared!r}.")
    return kinds[0], "null" in types


def connection_form_widgets(conn_type: str = "qstash") -> dict[str, Any]:
    """
    The WTForms fields of the connection form before Airflow 3.2 (``get_connection_form_widgets``).

    Built from the ``conn-fields`` this provider declares in :func:`get_provider_info`, so the form is
    written once. Airflow 2.11 accepts only ``StringField``, ``IntegerField``, ``PasswordField`` and
    ``BooleanField``: a ``number`` is a text field (the connection reader parses numeric text), an
    ``integer`` an integer field that keeps the schema's ``minimum``, a string with ``"format": "password"``
    a password field. A field whose schema allows ``null`` may be left empty (the hook's default applies).

    :param conn_type: the connection type whose form to build.
    :raises ValueError: when a field's schema has a type the Airflow 2 form cannot show.
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import InputRequired, NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, spec in _connection_type_info(conn_type).get("conn-fields", {}).items():
        schema = spec.get("schema", {})
        kind, nullable = _schema_type(name, schema)
        validators: list[Any] = [Optional() if nullable else InputRequired()]
        default = schema.get("default")
        options: dict[str, Any] = {"description": spec.get("description", "")}
        if kind == "boolean":
            field_class: Any = BooleanField
        elif kind == "integer":
            field_class = IntegerField
            if "minimum" in schema or "maximum" in schema:
                validators.append(NumberRange(min=schema.get("minimum"), max=schema.get("maximum")))
            options["widget"] = BS3TextFieldWidget()
        elif kind == "number":
            field_class = StringField
            default = None if default is None else str(default)
            options["widget"] = BS3TextFieldWidget()
        elif kind == "string" and schema.get("format") == "password":
            field_class = PasswordField
            options["widget"] = BS3PasswordFieldWidget()
        elif kind == "string":
            field_class = StringField
            options["widget"] = BS3TextFieldWidget()
        else:
            raise ValueError(f"conn-fields {name!r}: the Airflow 2 connection form has no field for type {kind!r}.")
        widgets[name] = field_class(lazy_gettext(spec["label"]), validators=validators, default=default, **options)
    return widgets


def ui_field_behaviour(conn_type: str = "qstash") -> dict[str, Any]:
    """
    The connection form's hidden, relabelled and placeholder fields before Airflow 3.2
    (``get_ui_field_behaviour``): the ``ui-field-behaviour`` this provider declares, in Airflow 2's keys.

    :param conn_type: the connection type whose behaviour to return.
    """
    behaviour = _connection_type_info(conn_type).get("ui-field-behaviour", {})
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }
