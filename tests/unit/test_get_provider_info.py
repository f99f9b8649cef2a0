"""What Airflow reads about the provider: provider info, entry point, ProvidersManager, and a cheap operator import."""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_qstash.compat import ui_field_behaviour
from airflow_qstash.config import RetryPolicy
from airflow_qstash.connection_fields import BOOLEAN_EXTRAS, NUMERIC_EXTRAS, SECRET_TEXT_EXTRAS
from airflow_qstash.get_provider_info import get_provider_info
from airflow_qstash.hooks.qstash import QStashHook
from tests.support.airflow_versions import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS

DIST_NAME = "airflow-provider-qstash"


def import_string(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _airflow_schema(name):
    return json.loads(importlib.resources.files("airflow").joinpath(name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def info():
    return get_provider_info()


@pytest.fixture(scope="module")
def qstash_type(info):
    (connection_type,) = [c for c in info["connection-types"] if c["connection-type"] == "qstash"]
    return connection_type


# --------------------------------------------------------------------------- provider info and metadata


def test_provider_info_validates_against_airflows_schema(info):
    schema = _airflow_schema("provider_info.schema.json")
    jsonschema.validate(info, schema)
    # ...and the schema does bite: a copy without a required key is refused
    broken = copy.deepcopy(info)
    del broken["description"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_provider_info_is_json_serialisable_and_stable(info):
    assert json.loads(json.dumps(info)) == info
    assert get_provider_info() == info


def test_package_name_is_the_installed_distribution():
    dist = importlib.metadata.distribution(DIST_NAME)
    assert get_provider_info()["package-name"] == dist.metadata["Name"] == DIST_NAME


def test_entry_point_resolves_to_get_provider_info():
    dist = importlib.metadata.distribution(DIST_NAME)
    entry_points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert len(entry_points) == 1
    assert entry_points[0].value == "airflow_qstash.get_provider_info:get_provider_info"
    assert entry_points[0].load() is get_provider_info


def test_every_listed_module_imports(info):
    modules = [
        module
        for section in ("operators", "hooks", "triggers")
        for entry in info[section]
        for module in entry["python-modules"]
    ]
    assert modules == [
        "airflow_qstash.operators.qstash",
        "airflow_qstash.operators.dlq",
        "airflow_qstash.hooks.qstash",
        "airflow_qstash.triggers.qstash",
        "airflow_qstash.triggers.dlq",
        "airflow_qstash.triggers.dlq_events",
    ]
    for module in modules:
        assert importlib.import_module(module).__name__ == module


def test_every_section_names_a_declared_integration(info):
    integrations = {integration["integration-name"] for integration in info["integrations"]}
    assert integrations
    for section in ("operators", "hooks", "triggers"):
        for entry in info[section]:
            assert entry["integration-name"] in integrations


def test_connection_type_points_at_the_hook(qstash_type):
    hook_class = import_string(qstash_type["hook-class-name"])
    assert hook_class is QStashHook
    assert issubclass(hook_class, BaseHook)
    assert hook_class.conn_type == qstash_type["connection-type"] == "qstash"
    assert hook_class.hook_name == qstash_type["hook-name"]
    assert hook_class.conn_name_attr == "qstash_conn_id"
    assert callable(hook_class.test_connection)


def test_ui_field_behaviour(qstash_type):
    behaviour = qstash_type["ui-field-behaviour"]
    assert {"schema", "port", "login"} <= set(behaviour["hidden-fields"])
    assert not {"host", "password", "extra"} & set(behaviour["hidden-fields"])
    assert "token" in behaviour["relabeling"]["password"].lower()
    assert "region" in behaviour["relabeling"]["host"].lower()
    converted = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour.get("placeholders", {}),
    }
    jsonschema.validate(converted, _airflow_schema("customized_form_field_behaviours.schema.json"))


def test_conn_fields_match_what_the_hook_reads(qstash_type, monkeypatch):
    """The form is built from the same declaration the connection reader validates against."""
    fields = qstash_type["conn-fields"]
    assert set(fields) == set(NUMERIC_EXTRAS) | set(BOOLEAN_EXTRAS) | set(SECRET_TEXT_EXTRAS)
    # a connection whose every extra is null (a cleared form) reads as the defaults
    extra = dict.fromkeys(fields)
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_FORM", json.dumps({"conn_type": "qstash", "password": "t", "extra": extra}))
    config = QStashHook("qstash_form").config
    read = {
        "timeout": config.timeout,
        "max_retries": config.retry.max_retries,
        "backoff_initial": config.retry.backoff_initial,
        "backoff_max": config.retry.backoff_max,
        "max_rate_limit_wait": config.retry.max_rate_limit_wait,
        "poll_interval_max": config.poll_interval_max,
    }
    assert set(read) == set(NUMERIC_EXTRAS)
    assert config.proxy is None  # a cleared proxy field is no proxy
    defaults = RetryPolicy()
    assert (defaults.max_retries, defaults.backoff_max) == (read["max_retries"], read["backoff_max"])
    for name, field in fields.items():
        assert field["label"]
        schema = field["schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        jsonschema.validate(schema.get("default"), schema)
        jsonschema.validate(None, schema)  # the form may store a cleared field as null
        if name in NUMERIC_EXTRAS:
            assert schema["default"] == read[name]
            spec = NUMERIC_EXTRAS[name]
            # the form's range is the reader's: the bounds pass the schema, one step outside does not
            jsonschema.validate(spec.maximum, schema)
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(spec.maximum * 2 + 1, schema)
        elif name in SECRET_TEXT_EXTRAS:
            assert schema["format"] == "password" and "default" not in schema
        else:
            assert schema["default"] is False


# --------------------------------------------------------------------------- Airflow's ProvidersManager


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_providers_manager_sees_the_provider(providers_manager):
    providers = providers_manager.providers
    assert DIST_NAME in providers
    provider = providers[DIST_NAME]
    assert provider.version == importlib.metadata.version(DIST_NAME)
    assert provider.data["package-name"] == DIST_NAME
    assert provider.data["connection-types"] == get_provider_info()["connection-types"]


def test_providers_manager_sees_the_hook():
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:  # before Airflow 3.2 the one ProvidersManager serves tasks too
        from airflow.providers_manager import ProvidersManager as Manager  # type: ignore[assignment]

    hook_info = Manager().hooks["qstash"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_qstash.hooks.qstash.QStashHook"
    assert hook_info.package_name == DIST_NAME
    assert hook_info.connection_type == "qstash"
    assert hook_info.connection_id_attribute_name == "qstash_conn_id"
    assert hook_info.hook_name == "Upstash QStash"
    assert hook_info.connection_testable is True


def _reads_the_form() -> bool:
    """
    Whether this Airflow builds connection forms: from provider info on 3.2+, from the hook's WTForms methods
    before that, which Airflow 3.0 and 3.1 do only when WTForms is installed (with the FAB provider).
    """
    return AIRFLOW_V_3_2_PLUS or importlib.util.find_spec("wtforms") is not None


def test_hook_declares_the_form_for_airflow_before_3_2():
    # Airflow before 3.2 reads the methods of the hook class itself, not inherited ones
    assert {"get_connection_form_widgets", "get_ui_field_behaviour"} <= set(QStashHook.__dict__)
    assert QStashHook.get_ui_field_behaviour() == ui_field_behaviour()


def test_providers_manager_field_behaviour(providers_manager):
    if not _reads_the_form():
        assert "qstash" not in providers_manager.field_behaviours  # Airflow 3.0/3.1 without WTForms: no form
        return
    behaviour = providers_manager.field_behaviours["qstash"]
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])
    assert behaviour["relabeling"] == {"password": "QStash token", "host": "Region or base URL"}


def test_providers_manager_connection_form_widgets(providers_manager, qstash_type):
    widgets = {k: w for k, w in providers_manager.connection_form_widgets.items() if k.startswith("extra__qstash__")}
    if not _reads_the_form():
        assert widgets == {}  # Airflow 3.0/3.1 without WTForms show no provider's extra fields
        return
    declared = qstash_type["conn-fields"]
    assert set(widgets) == {f"extra__qstash__{name}" for name in declared}
    for name, field in declared.items():
        widget = widgets[f"extra__qstash__{name}"]
        assert widget.package_name == DIST_NAME
        assert widget.field_name == name
        # a proxy URL may hold a password: the form masks it
        assert widget.is_sensitive is (field["schema"].get("format") == "password")
        if name in SECRET_TEXT_EXTRAS:
            continue
        default = field["schema"]["default"]
        if AIRFLOW_V_3_2_PLUS:  # the declaration itself
            assert widget.field["value"] == default
        else:  # the WTForms field compat.connection_form_widgets() built from it (numbers as text)
            kind = next(t for t in field["schema"]["type"] if t != "null")
            expected = {
                "boolean": ("BooleanField", default),
                "integer": ("IntegerField", default),
                "number": ("StringField", str(default)),
            }[kind]
            assert (widget.field.field_class.__name__, widget.field.kwargs["default"]) == expected


# --------------------------------------------------------------------------- the operator module imports cheaply


WATCHED = (
    "requests",
    "httpx",
    "tenacity",
    "airflow_qstash.hooks",
    "airflow_qstash.triggers",
    "qstash_emulator",
)

_PROBE = textwrap.dedent(
    """
    import json, sys
    {imports}
    watched = {watched!r}
    loaded = sorted(m for m in sys.modules if any(m == w or m.startswith(w + ".") for w in watched))
    print("PROBE:" + json.dumps({{"loaded": loaded, "modules": sorted(sys.modules)}}))
    """
)


def _start_probe(imports):
    code = _PROBE.format(imports="\n".join(f"import {module}" for module in imports), watched=WATCHED)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _probe_result(process):
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("PROBE:")]
    return json.loads(line.removeprefix("PROBE:"))


def test_operator_module_imports_no_transport_or_hook_modules():
    baseline_process = _start_probe(
        ["airflow.sdk" if AIRFLOW_V_3_0_PLUS else "airflow", "airflow.providers.common.compat.sdk"]
    )
    operator_process = _start_probe(["airflow_qstash.operators.qstash"])
    baseline = _probe_result(baseline_process)
    operator = _probe_result(operator_process)

    assert "airflow_qstash.operators.qstash" in operator["modules"]
    assert not [m for m in baseline["loaded"] if m.startswith("airflow_qstash")]
    added = sorted(set(operator["loaded"]) - set(baseline["loaded"]))
    assert added == [], f"importing the operator module also imported {added}"
    # the provider's own heavy modules are absent outright, and so is requests where Airflow itself does not
    # load it (Airflow 2's core does)
    present = [m for m in operator["loaded"] if m.startswith("airflow_qstash.")]
    if "requests" not in baseline["modules"]:
        present += [m for m in operator["loaded"] if m.split(".")[0] == "requests"]
    assert present == []


def test_the_descriptions_airflow_and_pip_show_mention_the_dlq():
    """#21.5: ``airflow providers list`` showed only the bulk cancel."""
    import configparser
    import pathlib

    from airflow_qstash.get_provider_info import get_provider_info

    shown = get_provider_info()["description"]
    assert "dead-letter queue (DLQ)" in shown and "delete or retry" in shown and "Cancel pending" in shown
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).resolve().parents[2] / "setup.cfg")
    assert "dead-letter queue (DLQ)" in setup["metadata"]["description"]
