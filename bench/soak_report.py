"""
Run the reliability soak and the bad-input table, then print the README's figures table.

Run from the repository root::

    python bench/soak_report.py            # run tests/reliability/test_soak.py + test_bad_input.py, print the table
    python bench/soak_report.py --no-run   # only print the table from the last run's test-artifacts/*.json

The figures are written by the tests themselves (``test-artifacts/soak-figures.json`` and
``test-artifacts/bad-input-figures.json``, gitignored); this script only runs them and formats the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SOAK = ARTIFACTS / "soak-figures.json"
BAD_INPUT = ARTIFACTS / "bad-input-figures.json"
TESTS = ["tests/reliability/test_soak.py", "tests/reliability/test_bad_input.py"]
FAULT_NAMES = {
    "429": "429 burst limit",
    "429_daily": "429 daily limit",
    "5xx": "5xx",
    "drop": "dropped connection",
    "partial": "partial batch failure",
}


def machine() -> str:
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {round(int(line.split()[1]) / 1024 / 1024)} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores{memory}"


def run_tests() -> float:
    for stale in (SOAK, BAD_INPUT):
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"]
    print("$", " ".join(command[2:]), flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"the reliability tests failed (exit {result.returncode}); no figures printed")
    return elapsed


def table(soak: dict[str, Any], bad: dict[str, Any], elapsed: float | None) -> str:
    faults = soak["faults_injected"]
    fault_text = ", ".join(f"{FAULT_NAMES[k]} {faults[k]:,}" for k in FAULT_NAMES)
    layers = ", ".join(f"{layer} {n}" for layer, n in bad["refused_by_layer"].items())
    producers = "; ".join(
        f"{p['path']}: ended in {p['seconds']} s, {p['published_during_run']} published meanwhile, "
        f"{p['left_for_next_run']} left held (created after the pinned to_date)"
        for p in soak.get("producer_runs", [])
    )
    kills = "; ".join(f"{k['how']} after {k['killed_after']} batches" for k in soak.get("kill_runs", []))
    rows = [
        (
            "Scenarios run",
            f"{soak['scenarios_run']} ({soak['scenarios_generous_retries']} with max_retries=10, "
            f"{soak['scenarios_scarce_retries']} with max_retries=1), each on the sync and the deferrable path",
        ),
        ("Bulk-cancel requests sent", f"{soak['requests']:,}"),
        (
            "Faults injected",
            f"{soak['faults_injected_total']:,}: {fault_text}; plus 0-5 ms latency on every request",
        ),
        (
            "Messages checked",
            f"{soak['messages_checked']:,} (one by one against the oracle; "
            f"{soak['messages_expected_cancelled']:,} selected)",
        ),
        ("Collateral cancels", f"{soak['collateral_cancels']}"),
        ("Messages left behind", f"{soak['messages_left_behind']}"),
        (
            "Task re-runs needed",
            f"{soak['task_reruns_needed']} of {soak['task_runs']} runs with max_retries=10; "
            f"{soak['scarce_task_reruns_needed']} re-runs ({soak['scarce_task_runs']} runs) with max_retries=1, "
            "all ending exact",
        ),
        ("Producers publishing during the run", producers or "not run"),
        ("Killed between batches, then re-run", (kills + "; each re-run exact") if kills else "not run"),
        (
            "Bad inputs tried",
            f"{bad['bad_inputs_tried']}: {bad['refused_with_a_clear_error']} refused with a clear error "
            f"({layers}), nothing cancelled; {bad['accepted_and_encoded_exactly']} accepted and encoded "
            "exactly (20,000 ids split, non-ASCII/reserved labels and URLs)",
        ),
    ]
    lines = ["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    when = f"{dt.date.today().isoformat()}, {machine()}"
    if elapsed is not None:
        when += f", {elapsed:.0f} s for both test files"
    return "\n".join([*lines, "", f"Measured {when}."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="print the figures of the last run only")
    args = parser.parse_args()
    elapsed = None if args.no_run else run_tests()
    missing = [path.name for path in (SOAK, BAD_INPUT) if not path.exists()]
    if missing:
        sys.exit(f"no figures ({', '.join(missing)} missing): run without --no-run")
    print()
    print(table(json.loads(SOAK.read_text()), json.loads(BAD_INPUT.read_text()), elapsed))


if __name__ == "__main__":
    main()
