"""Benchmark 3: what the provider adds to DAG parsing, measured with ``python -X importtime``.

Run from the repository root::

    .venv/bin/python bench/bench_parse_time.py                    # 5 runs per file (2-3 minutes on a busy box)
    .venv/bin/python bench/bench_parse_time.py --runs 9 --no-pyc  # and without a bytecode cache

Each example DAG in ``dags_examples/`` (and ``import airflow_qstash.operators.qstash`` alone) runs in a
fresh interpreter under ``-X importtime``, after the imports every DAG file makes anyway:
``airflow.sdk``, ``airflow.providers.common.compat.sdk`` and ``airflow.timetables.interval`` (the
baseline). The provider's cost is the sum of the own import times (``-X importtime`` "self") of the
``airflow_qstash`` modules, and of any third-party module, imported after the baseline. Modes:

* ``pyc`` (default): bytecode cached, as in a normal installation (a private ``PYTHONPYCACHEPREFIX``,
  warmed first);
* ``no pyc`` (``--no-pyc``, interleaved with the other): ``PYTHONDONTWRITEBYTECODE=1`` and no cache for
  the provider's modules, which are then compiled from source on every parse (an editable install in an
  environment that sets ``PYTHONDONTWRITEBYTECODE``, as this sandbox does).

Targets: at most 50 ms added, and no HTTP client (requests, httpx, urllib3), retry library (tenacity),
hook, trigger or emulator module imported at parse time. The script exits 1 if one is imported (the
milliseconds are only reported: a busy machine must not fail a build).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, header, median, progress, table

BASELINE = ("airflow.sdk", "airflow.providers.common.compat.sdk", "airflow.timetables.interval")
MARK = "@@bench-baseline-done@@"
TARGET_MS = 50.0
#: Modules that must not be imported while parsing a DAG file (top-level package names or prefixes).
FORBIDDEN = (
    "requests",
    "httpx",
    "urllib3",
    "tenacity",
    "starlette",
    "uvicorn",
    "airflow_qstash.hooks",
    "airflow_qstash.triggers",
    "qstash_emulator",
)
#: An ``AssetWatcher`` holds its trigger instance, built when the DAG file is parsed: the event trigger's
#: module is the one trigger module a DAG file may import (it imports its hook only in the triggerer), as
#: tests/project/test_dag_integrity.py allows too.
EVENT_TRIGGER_MODULES = frozenset({"airflow_qstash.triggers", "airflow_qstash.triggers.dlq_events"})

_CHILD = """
import json, runpy, sys, time
{baseline}
before = set(sys.modules)
print({mark!r}, file=sys.stderr, flush=True)
started = time.perf_counter()
{target}
exec_ms = (time.perf_counter() - started) * 1000
already = sorted(m for m in before if any(m == f or m.startswith(f + ".") for f in {forbidden!r}))
print(json.dumps({{"exec_ms": exec_ms, "new": sorted(set(sys.modules) - before), "forbidden_before": already}}))
"""


def child_code(target: str) -> str:
    if target.endswith(".py"):
        statement = f"runpy.run_path({str(REPO / target)!r}, run_name='qstash_bench_dag')"
    else:
        statement = f"import {target}"
    return _CHILD.format(
        baseline="\n".join(f"import {module}" for module in BASELINE),
        mark=MARK,
        target=statement,
        forbidden=FORBIDDEN,
    )


@dataclass
class Run:
    """One fresh interpreter's figures."""

    new: list[str]  # modules imported after the baseline
    already: list[str]  # forbidden-listed modules the baseline itself imported
    exec_ms: float  # wall time of the file (imports and DAG construction)
    baseline_ms: float  # -X importtime self times of the baseline imports
    added_ms: float  # ... of everything imported after them
    provider_ms: float  # ... of the provider's modules and third-party modules new after the baseline


def run_once(target: str, env: dict[str, str]) -> Run:
    """Import or run ``target`` in a fresh interpreter under ``-X importtime``, after the baseline."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", child_code(target)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed:\n{done.stderr[-3000:]}")
    before, _, after = done.stderr.partition(MARK)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    added = _importtime(after)
    provider, _, third_party = classify([name for name, _ in added])
    return Run(
        new=data["new"],
        already=data["forbidden_before"],
        exec_ms=data["exec_ms"],
        baseline_ms=sum(us for _, us in _importtime(before)) / 1000,
        added_ms=sum(us for _, us in added) / 1000,
        provider_ms=sum(us for name, us in added if name in {*provider, *third_party}) / 1000,
    )


def _importtime(stderr: str) -> list[tuple[str, int]]:
    """``(module, own microseconds)`` of each ``-X importtime`` line."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.split(":", 1)[1].split("|")
            out.append((name.strip(), int(self_us)))
    return out


def classify(modules: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(provider modules, Airflow modules, third-party modules) among ``modules``; stdlib is left out."""
    provider, airflow, third_party = [], [], []
    stdlib = sys.stdlib_module_names
    for module in modules:
        top = module.split(".")[0]
        if top == "airflow_qstash":
            provider.append(module)
        elif top == "airflow":
            airflow.append(module)
        elif top not in stdlib and not top.startswith("_") and module != "qstash_bench_dag":
            third_party.append(module)
    return provider, airflow, third_party


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per file and mode (default 5)")
    parser.add_argument("--no-pyc", action="store_true", help="also measure without bytecode cache (compiling)")
    args = parser.parse_args()

    targets = [str(p.relative_to(REPO)) for p in sorted((REPO / "dags_examples").glob("*.py"))]
    targets.append("airflow_qstash.operators.qstash")
    header("Benchmark 3: parse-time cost of the provider, on top of " + " + ".join(BASELINE))

    with tempfile.TemporaryDirectory(prefix="qstash-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        env.setdefault("AIRFLOW_HOME", str(Path(tmp) / "airflow_home"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        modes = {"pyc": {**env, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}}
        if args.no_pyc:
            modes["no pyc"] = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(Path(tmp) / "none")}
        for target in targets:  # warm-up: write the pyc cache, create AIRFLOW_HOME, warm the OS file cache
            run_once(target, modes["pyc"])
        results: dict[tuple[str, str], list[Run]] = {(t, m): [] for t in targets for m in modes}
        for n in range(args.runs):
            for target in targets:
                for mode, mode_env in modes.items():
                    results[target, mode].append(run_once(target, mode_env))
            progress(f"run {n + 1} of {args.runs}")

    rows = []
    failures = []
    worst = 0.0
    for target in targets:
        runs = [run for mode in modes for run in results[target, mode]]
        new = sorted({m for run in runs for m in run.new})
        provider, airflow, third_party = classify(new)
        forbidden = [
            m for m in new if any(m == f or m.startswith(f + ".") for f in FORBIDDEN) and m not in EVENT_TRIGGER_MODULES
        ]
        failures += [f"{target}: {m}" for m in forbidden]
        provider_ms = {mode: median(r.provider_ms for r in results[target, mode]) for mode in modes}
        worst = max(worst, *provider_ms.values())
        pyc = results[target, "pyc"]
        rows.append(
            (
                target,
                *provider_ms.values(),
                median(r.added_ms for r in pyc),
                median(r.exec_ms for r in pyc),
                len(provider),
                len(airflow),
                ", ".join(third_party) or "none",
                ", ".join(forbidden) or "none",
            )
        )
    table(
        (
            "file",
            *(f"provider ms ({mode})" for mode in modes),
            "all added ms",
            "file wall ms",
            "provider modules",
            "Airflow modules",
            "3rd-party added",
            "forbidden",
        ),
        rows,
    )
    print()
    every_run = [run for runs in results.values() for run in runs]
    provider_modules = sorted({m for run in every_run for m in classify(run.new)[0]})
    print(f"provider modules imported at parse time: {', '.join(provider_modules)}")
    airflow_modules = sorted({m for run in every_run for m in classify(run.new)[1]})
    print(f"Airflow modules imported after the baseline (by the DAG files): {', '.join(airflow_modules) or 'none'}")
    already = sorted({m.split(".")[0] for run in every_run for m in run.already})
    print(f"forbidden-listed packages the baseline imports by itself (not the provider's doing): {', '.join(already)}")
    print(
        f"baseline import time (median of -X importtime self times): {median(r.baseline_ms for r in every_run):,.0f} ms"
    )
    print(
        "provider ms: own import time of airflow_qstash.* modules (and of third-party modules new after the "
        "baseline); all added: every module imported after the baseline, the DAG file's own imports included "
        "(medians). file wall: the file's run time, DAG construction included."
    )
    print(f"target: <= {TARGET_MS:.0f} ms and nothing forbidden; worst provider ms: {worst:.1f}")
    for failure in failures:
        print(f"FORBIDDEN at parse time: {failure}")
    return 1 if failures else 0  # a timing is reported, never enforced: a busy machine would fail it


if __name__ == "__main__":
    sys.exit(main())
