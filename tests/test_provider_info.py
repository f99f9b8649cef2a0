"""What Airflow reads about the provider: provider info, entry point, ProvidersManager, and a cheap operator import."""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.resources
import json
import subprocess
import sys
import textwrap

import jsonschema
import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_qstash.get_provider_info import get_provider_info
from airflow_qstash.hooks.qstash import QStashConnectionConfig, QStashHook, RetryPolicy

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
        "airflow_qstash.hooks.qstash",
        "airflow_qstash.triggers.qstash",
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
    fields = qstash_type["conn-fields"]
    assert set(fields) == {"timeout", "max_retries", "max_rate_limit_wait"}
    defaults = RetryPolicy()
    hook_defaults = {
        "timeout": QStashConnectionConfig.__dataclass_fields__["timeout"].default,
        "max_retries": defaults.max_retries,
        "max_rate_limit_wait": defaults.max_rate_limit_wait,
    }
    for name, field in fields.items():
        assert field["label"]
        schema = field["schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        assert schema["default"] == hook_defaults[name]
        jsonschema.validate(schema["default"], schema)
        jsonschema.validate(None, schema)  # the form may store a cleared field as null...

    # ...and the hook reads such a connection: null extras mean the defaults
    extra = dict.fromkeys(fields)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QSTASH_FORM",
        json.dumps({"conn_type": "qstash", "password": "t", "extra": extra}),
    )
    config = QStashHook("qstash_form").config
    assert config.timeout == hook_defaults["timeout"]
    assert config.retry.max_retries == hook_defaults["max_retries"]
    assert config.retry.max_rate_limit_wait == hook_defaults["max_rate_limit_wait"]


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
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks["qstash"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_qstash.hooks.qstash.QStashHook"
    assert hook_info.package_name == DIST_NAME
    assert hook_info.connection_type == "qstash"
    assert hook_info.connection_id_attribute_name == "qstash_conn_id"
    assert hook_info.hook_name == "Upstash QStash"
    assert hook_info.connection_testable is True


def test_providers_manager_field_behaviour(providers_manager):
    behaviour = providers_manager.field_behaviours["qstash"]
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])
    assert behaviour["relabeling"] == {"password": "QStash token", "host": "Region or base URL"}


def test_providers_manager_connection_form_widgets(providers_manager):
    widgets = providers_manager.connection_form_widgets
    for name, default in (("timeout", 30), ("max_retries", 5), ("max_rate_limit_wait", 60)):
        widget = widgets[f"extra__qstash__{name}"]
        assert widget.package_name == DIST_NAME
        assert widget.field_name == name
        assert widget.is_sensitive is False
        assert widget.field["value"] == default


# --------------------------------------------------------------------------- the operator module imports cheaply


WATCHED = (
    "requests",
    "httpx",
    "tenacity",
    "airflow_qstash.hooks",
    "airflow_qstash.triggers",
    "airflow_qstash.emulator",
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
    baseline_process = _start_probe(["airflow.sdk", "airflow.providers.common.compat.sdk"])
    operator_process = _start_probe(["airflow_qstash.operators.qstash"])
    baseline = _probe_result(baseline_process)
    operator = _probe_result(operator_process)

    assert "airflow_qstash.operators.qstash" in operator["modules"]
    assert not [m for m in baseline["loaded"] if m.startswith("airflow_qstash")]
    added = sorted(set(operator["loaded"]) - set(baseline["loaded"]))
    assert added == [], f"importing the operator module also imported {added}"
    # requests and the provider's own heavy modules are absent outright, not merely no more than Airflow's
    assert not [m for m in operator["loaded"] if m == "requests" or m.startswith(("requests.", "airflow_qstash."))]
