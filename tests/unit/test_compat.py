"""
``airflow_qstash.compat``: each version-dependent piece does what it names on the running Airflow.

These run on the newest Airflow and in every virtualenv of the version matrix (``scripts/matrix.py``),
so each assertion is written against the feature it depends on, not against a version number.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from typing import Any

import pytest

from airflow_qstash import compat
from airflow_qstash.get_provider_info import get_provider_info
from tests.conftest import TEST_TOKEN, connection_json
from tests.support import airflow_versions


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        compat.NoSuchThing  # noqa: B018


def test_importing_compat_pulls_in_no_trigger_or_connection_module():
    code = (
        "import sys, airflow\n"
        "before = set(sys.modules)\n"
        "import airflow_qstash.compat\n"
        "heavy = ('airflow.triggers.base', 'airflow.providers.common.compat.connection')\n"
        "print([m for m in heavy if m in set(sys.modules) - before])"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- reading a connection async


def test_get_async_connection_reads_the_connection_and_its_extras(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_COMPAT", connection_json("http://127.0.0.1:1", timeout=7))

    async def read() -> tuple[Any, dict[str, Any]]:
        conn = await compat.get_async_connection("qstash_compat")
        return conn, await compat.get_async_extra_dejson(conn)

    conn, extra = asyncio.run(read())
    assert (conn.conn_id, conn.conn_type, conn.host, conn.password) == (
        "qstash_compat",
        "qstash",
        "http://127.0.0.1:1",
        TEST_TOKEN,
    )
    assert extra["timeout"] == 7


def test_amask_secret_masks_the_value():
    from airflow.providers.common.compat.sdk import redact

    secret = "compat-amask-secret-value-1"
    asyncio.run(compat.amask_secret(secret))
    assert secret not in str(redact(f"token={secret}"))


def test_amask_secret_without_an_async_masker_masks_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch):
    import airflow.providers.common.compat.sdk as compat_sdk

    if airflow_versions.AIRFLOW_V_3_0_PLUS:
        import airflow.sdk.log

        monkeypatch.delattr(airflow.sdk.log, "amask_secret", raising=False)
    calls: list[tuple[Any, Any, bool]] = []

    def recording_mask_secret(secret: Any, name: Any = None) -> None:
        calls.append((secret, name, threading.current_thread() is threading.main_thread()))

    monkeypatch.setattr(compat_sdk, "mask_secret", recording_mask_secret)
    asyncio.run(compat.amask_secret("s", "password"))
    assert calls == [("s", "password", False)]


# --------------------------------------------------------------------------- the Airflow 2 connection form


class _Field:
    """Stands in for a WTForms field class: records how it was built (as Airflow 3.0's API server does)."""

    def __init__(
        self, label: Any = None, validators: Any = None, description: str = "", default: Any = None, widget: Any = None
    ):
        self.label, self.validators, self.description = label, validators, description
        self.default, self.widget = default, widget
        self.field_class = type(self)


def _record_range(self: Any, min: Any = None, max: Any = None) -> None:
    self.min, self.max = min, max


def _fake_module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def fake_wtforms(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """WTForms, Flask-AppBuilder's widgets and Flask-Babel stand-ins (Airflow 3 installs none of them)."""
    fake = types.SimpleNamespace(
        StringField=type("StringField", (_Field,), {}),
        IntegerField=type("IntegerField", (_Field,), {}),
        PasswordField=type("PasswordField", (_Field,), {}),
        BooleanField=type("BooleanField", (_Field,), {}),
        Optional=type("Optional", (), {"__init__": lambda self, *a, **k: None}),
        InputRequired=type("InputRequired", (), {"__init__": lambda self, *a, **k: None}),
        NumberRange=type("NumberRange", (), {"__init__": _record_range}),
        BS3TextFieldWidget=type("BS3TextFieldWidget", (), {}),
        BS3PasswordFieldWidget=type("BS3PasswordFieldWidget", (), {}),
    )
    modules = {
        "wtforms": _fake_module(
            "wtforms", **{k: getattr(fake, k) for k in ("StringField", "IntegerField", "PasswordField", "BooleanField")}
        ),
        "wtforms.validators": _fake_module(
            "wtforms.validators", **{k: getattr(fake, k) for k in ("Optional", "InputRequired", "NumberRange")}
        ),
        "flask_appbuilder": _fake_module("flask_appbuilder"),
        "flask_appbuilder.fieldwidgets": _fake_module(
            "flask_appbuilder.fieldwidgets",
            BS3TextFieldWidget=fake.BS3TextFieldWidget,
            BS3PasswordFieldWidget=fake.BS3PasswordFieldWidget,
        ),
        "flask_babel": _fake_module("flask_babel", lazy_gettext=lambda text: f"i18n:{text}"),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def _declared(conn_type: str = "qstash") -> dict[str, Any]:
    return next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type)


def test_connection_form_widgets_are_built_from_the_declared_conn_fields(fake_wtforms: types.SimpleNamespace):
    declared = _declared()["conn-fields"]
    widgets = compat.connection_form_widgets()
    assert set(widgets) == set(declared)
    for name, field in widgets.items():
        schema = declared[name]["schema"]
        kind = next(t for t in schema["type"] if t != "null")
        assert field.label == f"i18n:{declared[name]['label']}"
        assert isinstance(field.validators[0], fake_wtforms.Optional)  # every declared field may stay empty
        if kind == "integer":
            assert field.field_class is fake_wtforms.IntegerField
            assert field.default == schema["default"]
            ranges = [v for v in field.validators if isinstance(v, fake_wtforms.NumberRange)]
            assert [(r.min, r.max) for r in ranges] == [(schema.get("minimum"), schema.get("maximum"))]
        elif kind == "boolean":
            assert field.field_class is fake_wtforms.BooleanField
            assert field.default is schema["default"]
            continue
        elif kind == "string":  # the proxy URL: a password field (it may hold one)
            assert schema["format"] == "password"
            assert field.field_class is fake_wtforms.PasswordField
            continue
        else:
            assert kind == "number"
            assert field.field_class is fake_wtforms.StringField  # Airflow 2 has no float field
            assert field.default == str(schema["default"])
        assert isinstance(field.widget, fake_wtforms.BS3TextFieldWidget)


def _patch_declaration(monkeypatch: pytest.MonkeyPatch, conn_fields: dict[str, Any]) -> None:
    info = get_provider_info()
    info["connection-types"][0]["conn-fields"] = conn_fields
    monkeypatch.setattr("airflow_qstash.get_provider_info.get_provider_info", lambda: info)


def test_connection_form_widgets_map_every_schema_type(
    fake_wtforms: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
):
    _patch_declaration(
        monkeypatch,
        {
            "flag": {"label": "Flag", "schema": {"type": "boolean", "default": False}},
            "name": {"label": "Name", "description": "d", "schema": {"type": ["string", "null"]}},
            "secret": {"label": "Secret", "schema": {"type": "string", "format": "password"}},
        },
    )
    widgets = compat.connection_form_widgets()
    assert widgets["flag"].field_class is fake_wtforms.BooleanField
    assert widgets["flag"].default is False
    assert isinstance(widgets["flag"].validators[0], fake_wtforms.InputRequired)
    assert widgets["name"].field_class is fake_wtforms.StringField
    assert widgets["name"].description == "d"
    assert isinstance(widgets["name"].validators[0], fake_wtforms.Optional)
    assert widgets["secret"].field_class is fake_wtforms.PasswordField
    assert isinstance(widgets["secret"].widget, fake_wtforms.BS3PasswordFieldWidget)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, "no field for type 'array'"),
        ({"type": ["integer", "string"]}, "exactly one type besides 'null'"),
        ({}, "exactly one type besides 'null'"),
    ],
)
def test_connection_form_widgets_refuse_a_type_the_form_cannot_show(
    fake_wtforms: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch, schema: dict[str, Any], message: str
):
    _patch_declaration(monkeypatch, {"odd": {"label": "Odd", "schema": schema}})
    with pytest.raises(ValueError, match=f"conn-fields 'odd': .*{message}"):
        compat.connection_form_widgets()


def test_unknown_connection_type_is_refused(fake_wtforms: types.SimpleNamespace):
    with pytest.raises(ValueError, match="no connection type 'nope'"):
        compat.connection_form_widgets("nope")
    with pytest.raises(ValueError, match="no connection type 'nope'"):
        compat.ui_field_behaviour("nope")


def test_ui_field_behaviour_is_the_declared_one_in_airflow_2_keys():
    declared = _declared()["ui-field-behaviour"]
    assert compat.ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


# --------------------------------------------------------------------------- task logs in tests


def test_capture_task_logs_sees_an_operators_log_on_this_airflow():
    from airflow.providers.common.compat.sdk import BaseOperator

    from tests.support.task_logs import capture_task_logs

    operator = BaseOperator(task_id="compat_log_probe")
    with capture_task_logs() as entries:
        operator.log.info("probe %s", "line")
        operator.log.warning("second")
    assert [(e["event"], e["log_level"]) for e in entries if e["event"] in ("probe line", "second")] == [
        ("probe line", "info"),
        ("second", "warning"),
    ]
