"""
Properties of the operators over generated DAG inputs (issue #17.11): every filter given as a literal or as
a template (``{{ v }}``, ``{{ v | tojson }}``, ``{{ v | join(',') }}``) whose value is drawn (a string, a
list, ``None``, empty, white space), some listed in ``optional_filters``; the DLQ retry with drawn override
headers (credentials among them). On the sync and the deferrable path, a task EITHER fails before any
request OR sends requests that carry exactly the values the author meant (no JSON quotes, nothing dropped,
nothing filterless without the all-flag), and no text (error, log, XCom, trigger event) holds the token or
a credential from an override header.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.doubles.fake_qstash import Rounds
from tests.doubles.harness import (
    captured_logs,
    check_selection,
    check_texts,
    dump,
    exception_texts,
    no_sleep,
    pinned_clock,
    requests_to,
    set_env,
    wire,
)
from tests.integration.properties import strategies as s
from tests.integration.properties.tasks import CONN_ID, OPERATORS, run_task

#: Characters of a value an author means (no quote, comma or bracket: those make a value's text ambiguous).
VALUE_CHARS = string.ascii_letters + string.digits + " -_:.@/#?&=%"
EMPTY_TEXTS = {"", "None", "null", "[]"}

values = st.one_of(
    st.sampled_from(["a", "billing", "none", "None", "null", "", " ", "a b", "x&y=z", "50%", "#", "?"]),
    st.text(VALUE_CHARS, max_size=6),
)
raw_values = st.one_of(st.none(), values, st.lists(values, max_size=3))


def meant(value: Any, form: str) -> list[str] | None:
    """
    The values the author means by ``value`` given in ``form``; ``None`` when it means "not given" or is
    ambiguous (a rendering of ``None``/``null``/``[]``, which the provider documents as empty): such a field
    is not counted as a filter, and nothing is asserted about it beyond the selection rules.
    """
    if value is None:
        return None
    items = [item.strip() for item in (value if isinstance(value, list) else [value])]
    if not any(items):
        return None
    if form != "literal" and any(item in EMPTY_TEXTS for item in items):
        return None
    return [item for item in items if item]


@st.composite
def operator_cases(draw: st.DrawFn, dates: bool = False, retry_overrides: bool = False) -> dict[str, Any]:
    kind = "dlq_retry" if retry_overrides else draw(st.sampled_from(sorted(OPERATORS)))
    _, table, all_flag = OPERATORS[kind]
    token, header_secret = draw(s.secrets), draw(s.secrets)
    specs = [spec for spec in table.specs if spec.kind == "list" and spec.name not in ("message_ids", "dlq_ids")]
    specs = [spec for spec in specs if spec.name != "response_statuses"]
    chosen = draw(st.lists(st.sampled_from(specs), max_size=3, unique_by=lambda spec: spec.name))
    if retry_overrides:  # the overrides are what varies: one plain filter
        chosen = []
    kwargs: dict[str, Any] = {"labels": "a"} if retry_overrides else {}
    context: dict[str, Any] = {}
    fields: dict[str, dict[str, Any]] = {}
    for spec in chosen:
        value = draw(raw_values)
        form = draw(st.sampled_from(["literal", "text", "tojson", "join"]))
        if form == "join" and not isinstance(value, list):
            form = "text"
        if form == "literal":
            kwargs[spec.name] = value
        else:
            var = f"v_{spec.name}"
            context[var] = value
            kwargs[spec.name] = {"text": f"{{{{ {var} }}}}", "tojson": f"{{{{ {var} | tojson }}}}"}.get(
                form, f"{{{{ {var} | join(',') }}}}"
            )
        fields[spec.name] = {"param": spec.param, "value": value, "form": form}
    if retry_overrides:
        fields["labels"] = {"param": "label", "value": "a", "form": "literal"}
    templated = [name for name, f in fields.items() if f["form"] != "literal"]
    kwargs["optional_filters"] = draw(st.lists(st.sampled_from(templated), unique=True)) if templated else []
    date = draw(st.sampled_from([None, "2000-01-01T00:00:00Z", "0", "{{ v_from }}"])) if dates else None
    if date is not None:
        kwargs["from_date"] = date
        context["v_from"] = draw(st.sampled_from(["2026-12-30T00:00:00Z", "2000-01-01", "None", "", "0"]))
        fields["from_date"] = {"param": "fromDate", "value": context["v_from"] if "{{" in date else date}
    if draw(st.integers(0, 4)) == 0:
        kwargs[all_flag] = True
    overrides: dict[str, str] = {}
    if kind == "dlq_retry":
        overrides = draw(s.override_headers(header_secret))
        if draw(st.booleans()):
            kwargs["override_headers"] = overrides
        else:
            context["v_headers"] = overrides
            kwargs["override_headers"] = "{{ v_headers | tojson }}"
    return {
        "kind": kind,
        "kwargs": kwargs,
        "context": context,
        "fields": fields,
        "all_flag": bool(kwargs.get(all_flag)),
        "overrides": overrides,
        "token": token,
        "header_secret": header_secret,
        "deferrable": draw(st.booleans()),
        "first": draw(st.integers(0, 3)),
    }


@given(operator_cases())
def test_an_operator_task_fails_before_any_request_or_sends_exactly_what_the_author_meant(case: dict[str, Any]):
    """List filters in every form, optional or not, override headers; sync and deferrable."""
    check_task(case)


@given(operator_cases(dates=True))
def test_an_operator_lower_bound_that_selects_everything_is_not_a_filter(case: dict[str, Any]):
    """The same with a ``from_date`` (literal or rendered): ``2000-01-01`` alone selects everything."""
    check_task(case)


@given(operator_cases(retry_overrides=True))
def test_a_retry_override_header_is_range_checked_and_a_credential_in_it_never_reaches_a_text(
    case: dict[str, Any],
):
    """DLQ retry with drawn ``override_headers`` (literal or rendered JSON): credentials, typed numbers."""
    check_task(case)


def check_task(case: dict[str, Any]) -> None:
    connection = {
        "conn_type": "qstash",
        "host": "https://qstash.test",
        "password": case["token"],
        "extra": {"max_retries": 1, "backoff_initial": 0, "backoff_max": 0, "timeout": 5},
    }
    undo = set_env(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    server = Rounds(first=case["first"])
    try:
        with pinned_clock(), no_sleep(), wire(server), captured_logs() as logs:
            xcom, events, error = run_task(case)
    finally:
        undo()
    check_texts(
        [*logs.texts, *exception_texts(error), dump(xcom), *map(dump, events)],
        [case["token"], case["header_secret"]],
    )
    if not server.sent:
        assert error is not None, "no request and no failure"
        return
    set_filters: dict[str, str] = {}
    for name, field in case["fields"].items():
        if name == "from_date":
            if str(field["value"]).strip() not in {"", "None", "0"}:
                set_filters[name] = field["param"]
            continue
        wanted = meant(field["value"], field["form"])
        if wanted is None:
            continue
        set_filters[name] = field["param"]
        for request in requests_to(server):
            if request.kind is not None:
                sent = {v.strip() for k, v in request.query if k == field["param"]}
                assert sent == set(wanted), (
                    f"{name}: the author meant {sorted(set(wanted))}, {request.method} {request.path} sent "
                    f"{sorted(sent)} (form {field['form']})"
                )
    check_selection(
        requests_to(server), origin="https://qstash.test", set_filters=set_filters, all_flag=case["all_flag"]
    )
    if case["kind"] == "dlq_retry":
        for request in requests_to(server):
            retries = request.headers.get("upstash-retries")
            assert retries is None or 0 <= int(retries) <= 1000, f"Upstash-Retries {retries} was sent"
