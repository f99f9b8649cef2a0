"""
Hypothesis strategies for every kind of input a DAG author (or a connection) gives the provider.

Values are drawn from the forms the operators and hooks document (strings, lists, comma lists, JSON arrays,
Jinja's text of a list) and from what a template really renders (``None``, ``null``, ``[]``, white space,
``tojson``-quoted scalars), mixed with characters that mean something in a URL (``# ? / & = %``) and with
the example's own secret, so a value that echoes back is caught.
"""

from __future__ import annotations

import json
import string
from datetime import datetime, timezone
from typing import Any

from hypothesis import strategies as st

from airflow_qstash.connection_fields import NUMERIC_EXTRAS
from airflow_qstash.filters import DLQ_FILTERS, BulkCancelFilter
from tests.doubles.harness import DAY_MS, NOW_MS

#: A random secret per example (the connection's token, a credential in an override header).
secrets = st.text(string.ascii_letters + string.digits, min_size=20, max_size=32).map(lambda s: f"sk_{s}")

URL_CHARS = "#?/&=%+ ;,@:\\\t\n\"'[]{}.~"
ATOMS = (
    "a",
    "billing",
    "tenant:42",
    "a b",
    "x&y=z",
    "50%",
    "café",
    "none",
    "None",
    "null",
    "",
    " ",
    ",",
    '"a"',
    "'a'",
    "[]",
    '["a"]',
    "a,b",
    "#",
    "?",
    "/",
    "..",
    "%2F",
    "500",
)


def atoms(secret: str | None = None) -> st.SearchStrategy[str]:
    pool = list(ATOMS) + ([secret, f"x{secret}x"] if secret else [])
    return st.one_of(st.sampled_from(pool), st.text(string.ascii_letters + URL_CHARS, max_size=6))


def list_values(secret: str | None = None, numbers: bool = False) -> st.SearchStrategy[Any]:
    """A list filter's value, in every form the hooks and operators take."""
    atom = atoms(secret)
    if numbers:
        atom = st.one_of(atom, st.integers(-5, 1000).map(str))
    items = st.lists(st.one_of(atom, st.integers(-5, 1000)) if numbers else atom, min_size=0, max_size=3)
    return st.one_of(
        st.none(),
        atom,
        items,
        items.map(lambda v: json.dumps(v)),  # a JSON array (| tojson of a list)
        items.map(str),  # Jinja's text of a Python list
        items.map(lambda v: ", ".join(map(str, v))),  # a comma list
        atom.map(json.dumps),  # | tojson of a string: a JSON-quoted scalar
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def date_values() -> st.SearchStrategy[Any]:
    """A date bound: Unix ms, ISO text, the special forms, bounds that select everything, and nonsense."""
    near = st.integers(NOW_MS - 3 * 366 * DAY_MS, NOW_MS + 30 * DAY_MS)
    everything = [0, "0", "now", "2000-01-01", "2000-01-01T00:00:00Z", NOW_MS - 2 * 366 * DAY_MS, NOW_MS + DAY_MS]
    return st.one_of(
        st.sampled_from(everything),  # the bounds that keep nothing out (or almost): drawn often
        st.none(),
        st.sampled_from(["1999-12-31", "", " ", "None", "null", "2099-01-01", NOW_MS, NOW_MS - 1]),
        near,
        near.map(_iso),
        near.map(str),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(string.digits + "-:TZ+. ", max_size=25),
    )


@st.composite
def filters(draw: st.DrawFn, table: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """
    Keyword filters for one call: a few of ``table``'s filters (often none or one: the selections that
    widen), each with a drawn value. (Never the secret: a filter value is the author's and is meant to show
    in the plan's log line.)
    """
    specs = [spec for spec in table.specs if spec.name not in skip]
    if draw(st.booleans()):  # dates only: the selections a bound alone makes
        specs = [spec for spec in specs if spec.kind == "date"]
    chosen = draw(st.lists(st.sampled_from(specs), max_size=3, unique_by=lambda spec: spec.name))
    values: dict[str, Any] = {}
    for spec in chosen:
        if spec.kind == "list":
            values[spec.name] = draw(list_values(numbers=spec.name == "response_statuses"))
        else:
            values[spec.name] = draw(date_values())
    return values


def ids() -> st.SearchStrategy[str]:
    """A message or DLQ id: plain, or with characters that would leave a path segment."""
    return st.one_of(
        st.sampled_from(["msg_1", "", ".", "..", "a/b", "a?b", "a#b", "%2e%2e", "%2F", " ", "a b", "ü"]),
        st.text(string.ascii_letters + URL_CHARS, min_size=0, max_size=10),
    )


# --------------------------------------------------------------------------- connections

VALID_HOSTS = (
    "",
    "https://qstash.test",
    "https://qstash.test/",
    "https://QStash.Test:8443",
    "eu-central-1",
    "EU-CENTRAL-1",
    "us-east-1",
    "http://127.0.0.1:8080",
    "http://localhost:9",
)
SUFFIXES = ("", "/", "/v2/messages", "/v2/messages#", "/v2/dlq?", "?", "#", "?x=1", "#f", " ", "\t", "//", "/%2e%2e")


def hosts() -> st.SearchStrategy[str]:
    """A connection host: a valid one, one with a path/query/fragment/white space after it, or userinfo."""
    base = st.sampled_from(VALID_HOSTS)
    return st.one_of(
        base,
        st.tuples(base, st.sampled_from(SUFFIXES)).map("".join),
        st.sampled_from(
            [
                "https://user:pw@qstash.test",
                "https://user@qstash.test",
                " https://qstash.test",
                "https://qstash test",
                "ftp://qstash.test",
                "http://qstash.test",
                "https://qstash.test:99999",
                "https://[::1]:8080",
            ]
        ),
        st.text(string.ascii_letters + URL_CHARS, max_size=15),
    )


def hosts_with(secret: str) -> st.SearchStrategy[str]:
    """A host that carries the token where it does not belong (userinfo, path, query), or a valid one."""
    return st.sampled_from(
        [
            "https://qstash.test",
            f"https://user:{secret}@qstash.test",
            f"https://{secret}@qstash.test",
            f"https://qstash.test/{secret}",
            f"https://qstash.test?token={secret}",
            secret,
        ]
    )


def extras(secret: str) -> st.SearchStrategy[dict[str, Any]]:
    """Quick retries, with any one extra replaced by a drawn value (numbers, text, the secret)."""
    quick: dict[str, Any] = {"max_retries": 1, "backoff_initial": 0, "backoff_max": 0, "timeout": 5}
    wild = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(),
        st.sampled_from(["", "nan", "inf", "-1", "1e309", "30", secret]),
    )
    keys = st.sampled_from([*NUMERIC_EXTRAS, "allow_insecure_http", "proxy"])
    return st.one_of(
        st.just(quick),
        st.tuples(keys, wild).map(lambda kv: {**quick, kv[0]: kv[1]}),
    )


# --------------------------------------------------------------------------- retry overrides

CREDENTIAL_HEADERS = (
    "Upstash-Forward-Authorization",
    "Upstash-Forward-Proxy-Authorization",
    "Upstash-Forward-Cookie",
    "Upstash-Forward-X-Api-Key",
    "Upstash-Forward-X-Auth-Token",
    "Upstash-Forward-Client-Secret",
    "Upstash-Forward-X-Hub-Signature",
)


def override_headers(secret: str) -> st.SearchStrategy[dict[str, str]]:
    """Override headers: credentials (carrying ``secret``), typed ones with any number, plain ones."""
    credential = st.tuples(st.sampled_from(CREDENTIAL_HEADERS), st.sampled_from([secret, f"Bearer {secret}"]))
    typed = st.tuples(
        st.sampled_from(["Upstash-Retries", "Upstash-Delay", "Upstash-Timeout"]),
        st.sampled_from(["0", "3", "99999", "-1", "1e9", "30s", "abc", "", "nan"]),
    )
    plain = st.tuples(
        st.sampled_from(["Upstash-Forward-Tenant", "Upstash-Method", "X-Other"]), st.sampled_from(["a", ""])
    )
    return st.lists(st.one_of(credential, typed, plain), max_size=3).map(dict)


MESSAGE_TABLE = BulkCancelFilter.TABLE
DLQ_TABLE = DLQ_FILTERS
