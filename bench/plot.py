"""Draw the benchmark figures committed under ``docs/_data/`` as PNG files under ``docs/_static/``.

Run from the repository root (``make docs`` runs it through ``docs/conf.py``)::

    python bench/plot.py                 # redraw what is missing or older than its JSON or this script
    python bench/plot.py --force         # redraw everything

Each ``docs/_data/<name>.json`` was written by ``bench/<name>.py --json docs/_data/<name>.json`` (see
``write_figures`` in ``bench/_common.py``): the title, date, machine, command, columns and rows of the
script's table. A JSON file that has no drawing here is an error, so a figure never goes missing quietly.
The PNGs are build output (ignored by git); drawing needs matplotlib (the ``docs`` extra) and no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "docs" / "_data"
STATIC = REPO / "docs" / "_static"


def _emulator(figures: dict[str, Any], axes: Any) -> None:
    """``bench_emulator.py``: one 500-message bulk cancel (median ms) against the number of stored messages."""
    columns = figures["columns"]
    stored = [row[0] for row in figures["rows"]]
    for kind, marker in (("label+window", "o"), ("count only", "s")):
        for what, style in (("client", "-"), ("cpu", ":")):
            index = columns.index(f"{kind} {what} ms")
            axes.plot(stored, [row[index] for row in figures["rows"]], style, marker=marker, label=f"{kind}, {what}")
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("messages stored")
    axes.set_ylabel("ms per 500-message bulk cancel (median)")
    axes.legend(loc="upper left")


#: The drawing for each JSON file name (without ``.json``).
PLOTS: dict[str, Callable[[dict[str, Any], Any], None]] = {"bench_emulator": _emulator}


def draw(name: str, source: Path, target: Path) -> None:
    """Draw one figure: the script's own drawing plus its title, and its date, machine and command below."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no network
    from matplotlib import pyplot

    figures = json.loads(source.read_text(encoding="utf-8"))
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    PLOTS[name](figures, axes)
    axes.set_title(figures["title"], fontsize=10)
    axes.grid(True, alpha=0.3)
    figure.text(0.01, 0.01, f"{figures['date']}, {figures['machine']}", fontsize=7, color="0.4")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, metadata={"Software": None})
    pyplot.close(figure)


def build(*, force: bool = False) -> list[Path]:
    """Draw every stale figure; returns the PNG paths (drawn or already current)."""
    unknown = sorted(path.name for path in DATA.glob("*.json") if path.stem not in PLOTS)
    if unknown:
        raise SystemExit(f"bench/plot.py has no drawing for {', '.join(unknown)}: add one to PLOTS.")
    targets = []
    for name in PLOTS:
        source, target = DATA / f"{name}.json", STATIC / f"{name}.png"
        if not source.exists():
            raise SystemExit(f"{source.relative_to(REPO)} is missing: run bench/{name}.py --json {source}.")
        newest_input = max(source.stat().st_mtime, Path(__file__).stat().st_mtime)
        if force or not target.exists() or target.stat().st_mtime < newest_input:
            draw(name, source, target)
        targets.append(target)
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="redraw every figure")
    args = parser.parse_args()
    for target in build(force=args.force):
        print(target.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
