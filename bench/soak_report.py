"""
Run the reliability soak and the bad-input table, then print the figures tables of docs/reliability.rst.

The soak's figures come per server generation (the emulator's ``legacy`` and ``actions`` modes), one
column each; the bad-input figures follow in a table of their own (refusals come before any request).

Run from the repository root::

    python bench/soak_report.py            # run the soak and bad-input tests, print the table
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
TESTS = ["tests/integration/reliability/test_soak.py", "tests/integration/reliability/test_bad_input.py"]
FAULT_NAMES = {
    "429": "429 burst limit",
    "429_daily": "429 daily limit",
    "5xx": "5xx",
    "drop": "dropped connection",
    "partial": "partial batch failure",
    "412": "spurious 412 on a start",
    "start_lost": "start answer lost (429 without rate-limit headers, action running)",
    "action_partial": "action finished with part of its snapshot left",
}
#: The columns of the table: the emulator's ``bulk_cancel`` mode and its heading.
MODES = {
    "legacy": 'legacy server (`bulk_cancel="legacy"`: `count` honoured, synchronous)',
    "actions": 'bulk-action server (`"actions"`: today\'s hosted QStash)',
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


def _requests(mode: dict[str, Any]) -> str:
    if not mode["polls"] and not mode["listings"]:
        return f"{mode['bulk_cancel_requests']:,} bulk cancels"
    return (
        f"{mode['requests']:,}: {mode['bulk_cancel_requests']:,} bulk cancels, {mode['polls']:,} polls, "
        f"{mode['listings']:,} listings"
    )


def _actions(mode: dict[str, Any]) -> str:
    if not mode["bulk_actions"]:
        return "none (batches)"
    return (
        f"{mode['bulk_actions']:,} (one per round, each followed to FINISHED; {mode['joins']} joined through the "
        "listing after a lost start answer)"
    )


def _faults(mode: dict[str, Any]) -> str:
    faults = mode["faults_injected"]
    listed = ", ".join(f"{FAULT_NAMES[k]} {faults[k]:,}" for k in faults)
    return f"{mode['faults_injected_total']:,}: {listed}; plus 0-5 ms latency on every request"


def _reruns(mode: dict[str, Any]) -> str:
    return (
        f"{mode['task_reruns_needed']} of {mode['task_runs']} runs with max_retries=10; "
        f"{mode['scarce_task_reruns_needed']} re-runs ({mode['scarce_task_runs']} runs) with max_retries=1, "
        "all ending exact"
    )


def _producers(runs: list[dict[str, Any]]) -> str:
    return (
        "; ".join(
            f"{p['path']}: ended in {p['seconds']} s, {p['published_during_run']} published meanwhile, "
            f"{p['left_for_next_run']} left held (created after the pinned to_date)"
            for p in runs
        )
        or "not run"
    )


def _kills(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "not run"
    text = "; ".join(f"{k['how']} after {k['killed_after']}" for k in runs)
    if all(k.get("rerun_joined") for k in runs):
        return text + "; each re-run joined the running action and ended exact"
    return text + "; each re-run exact"


def table(soak: dict[str, Any], bad: dict[str, Any], elapsed: float | None) -> str:
    """The figures of docs/reliability.rst: one column per server generation, then the bad-input row."""
    modes = {name: soak["modes"][name] for name in MODES}
    by_mode: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {
            "producers": [p for p in soak.get("producer_runs", []) if p["mode"] == name],
            "kills": [k for k in soak.get("kill_runs", []) if k["mode"] == name],
        }
        for name in MODES
    }
    rows: list[tuple[str, ...]] = [
        (
            "Scenarios run",
            *(
                f"{m['scenarios_run']} ({m['scenarios_generous_retries']} with max_retries=10, "
                f"{m['scenarios_scarce_retries']} with max_retries=1), each on the sync and the deferrable path"
                for m in modes.values()
            ),
        ),
        ("Requests sent", *(_requests(m) for m in modes.values())),
        ("Bulk actions", *(_actions(m) for m in modes.values())),
        ("Faults injected", *(_faults(m) for m in modes.values())),
        (
            "Messages checked",
            *(
                f"{m['messages_checked']:,} (one by one against the oracle; "
                f"{m['messages_expected_cancelled']:,} selected)"
                for m in modes.values()
            ),
        ),
        ("Collateral cancels", *(f"{m['collateral_cancels']}" for m in modes.values())),
        ("Messages left behind", *(f"{m['messages_left_behind']}" for m in modes.values())),
        ("Task re-runs needed", *(_reruns(m) for m in modes.values())),
        ("Producers publishing during the run", *(_producers(by_mode[n]["producers"]) for n in MODES)),
        ("Killed, then re-run", *(_kills(by_mode[n]["kills"]) for n in MODES)),
    ]
    lines = [
        "| figure | " + " | ".join(MODES.values()) + " |",
        "|---|" + "---|" * len(MODES),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    layers = ", ".join(f"{layer} {n}" for layer, n in bad["refused_by_layer"].items())
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| Bad inputs tried | {bad['bad_inputs_tried']}: {bad['refused_with_a_clear_error']} refused with a clear "
        f"error ({layers}), nothing cancelled; {bad['accepted_and_encoded_exactly']} accepted and encoded exactly "
        "(20,000 ids split, non-ASCII/reserved labels and URLs) |",
    ]
    when = f"{dt.date.today().isoformat()}, {machine()}, load {os.getloadavg()[0]:.1f}"
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
