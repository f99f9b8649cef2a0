"""Benchmark: the cost of the one redacting function as the tokens a process remembers grow.

Run from the repository root::

    .venv/bin/python bench/bench_redact.py            # about 10 seconds
    .venv/bin/python bench/bench_redact.py --calls 2000

Every text built from a server answer passes :func:`airflow_qstash.exceptions.redact`, which removes the
connection's token and every token the process remembers (up to 256: a triggerer serves many connections).
This measures one call, after a first call that builds the per-token matchers, for 0, 1, 16 and 256
remembered 36-character tokens and a 200-character error text (an error quote) and a 16 KiB text (the
most a quote with ``limit`` reads). Target: the cost grows with the text, not with the number of remembered
tokens (a 200-character text under 1 ms with 256 remembered). Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import header, table

from airflow_qstash import exceptions


def tokens(n: int) -> list[str]:
    """``n`` distinct tokens shaped like QStash's (36 characters, no long run shared between two)."""
    return [f"tok-{hashlib.sha256(str(index).encode()).hexdigest()[:32]}" for index in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls timed per cell (default 500)")
    args = parser.parse_args()
    header("redact: one call, by remembered tokens and text size")
    texts = {"200 chars": "QStash answered 412: " + "x" * 179, "16 KiB": "y" * 16_384}
    rows = []
    for remembered in (0, 1, 16, 256):
        exceptions._remembered.clear()
        for token in tokens(remembered):
            exceptions.remember_secret(token)
        cells = [remembered]
        for text in texts.values():
            exceptions.redact(text, "the-connections-own-token-0001", limit=200)  # builds the matchers
            seconds = timeit.timeit(
                lambda text=text: exceptions.redact(text, "the-connections-own-token-0001", limit=200),
                number=args.calls,
            )
            cells.append(f"{seconds / args.calls * 1000:.3f}")
        rows.append(cells)
    table(["remembered tokens", *(f"ms per call, {name}" for name in texts)], rows)


if __name__ == "__main__":
    main()
