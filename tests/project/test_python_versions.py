"""
The Python range both distributions declare (3.10 to 3.13, Airflow 3's range) and the proof of its minimum.

CI has only Python 3.11, so the 3.10 minimum is proved by ``vermin`` over the shipped code of both
distributions and the example DAGs: the same command ``make lint`` runs (read from the Makefile here). The
Airflow requirement is a floor only, like the official providers'.
"""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def cfg_lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def vermin_args() -> list[str]:
    match = re.search(r"^VERMIN_ARGS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile defines VERMIN_ARGS"
    return shlex.split(match.group(1))


#: The ``vermin`` console script of this interpreter's environment.
VERMIN = [sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())"]


def vermin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VERMIN, *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)


def test_make_lint_runs_vermin_for_python_3_10_over_both_distributions_and_the_example_dags():
    args = vermin_args()
    assert "-t=3.10-" in args
    assert {"airflow_qstash", "emulator/qstash_emulator", "dags_examples"} <= set(args)
    assert "$(BIN)/vermin $(VERMIN_ARGS)" in (ROOT / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n")[0]


def test_the_shipped_code_needs_no_python_newer_than_3_10():
    done = vermin(*vermin_args())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Minimum required versions: 3.10" in done.stdout


def test_the_checker_catches_what_3_10_lacks(tmp_path):
    """The control: the constructs this release replaced fail the same command."""
    (tmp_path / "new.py").write_text("import asyncio\nfrom typing import Self\nasyncio.timeout(1)\n")
    args = [arg for arg in vermin_args() if arg.startswith("-")]
    done = vermin(*args, str(tmp_path / "new.py"))
    assert done.returncode != 0
    assert "asyncio.timeout" in done.stdout and "typing.Self" in done.stdout


def test_the_provider_declares_airflows_python_range():
    cfg = setup_cfg()
    assert cfg["options"]["python_requires"] == ">=3.10"
    classifiers = cfg_lines(cfg["metadata"]["classifiers"])
    assert [c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")] == (
        PYTHONS
    )


def test_the_emulator_declares_the_same_python_range():
    project = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    classifiers = project["classifiers"]
    versions = [c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert versions == PYTHONS


def test_the_type_checker_and_linter_target_3_10():
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert tools["mypy"]["python_version"] == "3.10"
    assert tools["ruff"]["target-version"] == "py310"


def test_apache_airflow_is_a_floor_only():
    requires = cfg_lines(setup_cfg()["options"]["install_requires"])
    (airflow,) = [r for r in requires if re.match(r"apache-airflow\b(?!-)", r)]
    assert airflow == "apache-airflow>=2.11.0"


def test_python_3_10_gets_async_timeout_and_newer_pythons_do_not():
    requires = cfg_lines(setup_cfg()["options"]["install_requires"])
    assert 'async-timeout>=4.0.3; python_version<"3.11"' in requires


def test_the_docs_name_the_newest_tested_airflow_and_the_python_ci_runs():
    text = " ".join((ROOT / "docs" / "index.rst").read_text().replace("`", "").split())
    assert ">=2.11.0 (a floor only, as the official providers declare; the newest tested is 3.3.2)" in text
    assert "<3.4" not in text
    assert "Python 3.11 only" in text
