"""
The Airflow version matrix: the unit tests and the ``dag.test()`` example-DAG runs on the oldest patch
release of each supported minor that ``.venv`` (the newest Airflow) does not cover.

Each version gets its own virtualenv, ``.venv-af<version>``, installed from its pinned constraints file
``constraints/airflow-<version>.txt`` and rebuilt only when that file, ``setup.cfg`` or ``pyproject.toml``
(or ``emulator/pyproject.toml``) changes. Usage (``make matrix`` runs the first)::

    python scripts/matrix.py test [VERSION ...]    # build what is stale, then run the tests
    python scripts/matrix.py setup [VERSION ...]   # build the virtualenvs only
    python scripts/matrix.py lock [VERSION ...]    # re-resolve and rewrite the constraints files

``lock`` installs ``apache-airflow==VERSION``, the pins of :data:`MATRIX` and this project with its
``test`` extra into a scratch virtualenv with pip's resolver, and writes ``pip freeze`` of it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS_DIR = REPO / "constraints"

#: Airflow version -> what the resolver must be told beyond ``apache-airflow==VERSION`` so that the oldest
#: patch release installs as it shipped (pip otherwise takes the newest of every unbounded dependency).
MATRIX: dict[str, list[str]] = {
    # the lowest common-compat this provider declares: the oldest Airflow proves the lowest bound too
    "2.11.0": ["apache-airflow-providers-common-compat==1.22.0"],
    "3.0.0": [],
    # Airflow 3.1.0 imports structlog.dev.Styles, which structlog 26 removed; its execution API needs the
    # cadwyn, FastAPI and pydantic of its release (September 2025)
    "3.1.0": ["structlog==25.4.0", "cadwyn==5.4.4", "fastapi==0.117.1", "pydantic==2.11.9"],
    # 3.2.0's execution API fails to build its models (TITerminalStatePayload) with the newest FastAPI and
    # cadwyn: the ones the newest Airflow (constraints.txt) runs with work
    "3.2.0": ["cadwyn==7.0.0", "fastapi==0.136.3"],
}

#: The tests each version runs: everything but the slow ones, plus the example-DAG runs. A module that does
#: not import on a version still fails the run, but the other modules run and report too.
PYTEST_ARGS = ["-m", "not slow or e2e", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors"]

#: What a virtualenv's stamp covers: a change in any of these rebuilds it.
INPUTS = ("setup.cfg", "pyproject.toml", "emulator/pyproject.toml")


def constraints_file(version: str) -> Path:
    return CONSTRAINTS_DIR / f"airflow-{version}.txt"


def venv_dir(version: str) -> Path:
    return REPO / f".venv-af{version}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def fingerprint(version: str) -> str:
    """A hash of everything the virtualenv of ``version`` is built from."""
    digest = hashlib.sha256()
    for path in (constraints_file(version), *(REPO / name for name in INPUTS)):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def run(cmd: list[str], **kwargs: object) -> None:
    """Run ``cmd``, echoing it; a failure stops the script with the command's exit code."""
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode:
        raise SystemExit(result.returncode)


def make_venv(venv: Path) -> Path:
    """A new virtualenv at ``venv`` (on this interpreter's base Python) with an up-to-date pip."""
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    (venv / ".gitignore").write_text("*\n")  # Python 3.11's venv does not write one itself
    python = venv_python(venv)
    run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    return python


def setup(version: str) -> Path:
    """Build ``.venv-af<version>`` from its constraints unless it is up to date; its Python."""
    venv = venv_dir(version)
    stamp = venv / ".installed"
    wanted = fingerprint(version)
    if stamp.is_file() and stamp.read_text() == wanted and venv_python(venv).exists():
        return venv_python(venv)
    started = time.monotonic()
    python = make_venv(venv)
    pins = str(constraints_file(version))
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # every pinned package, then the project with its test extra (anything added to it since the lock
    # resolves within the pins)
    run([*pip, "-r", pins], cwd=REPO)
    run([*pip, "-c", pins, "-e", "./emulator"], cwd=REPO)  # the emulator's own distribution (e2e tests)
    run([*pip, "-c", pins, "-e", ".[test]"], cwd=REPO)
    stamp.write_text(wanted)
    print(f"matrix: built {venv.name} in {time.monotonic() - started:.0f} s", flush=True)
    return python


def lock(version: str) -> None:
    """Resolve Airflow ``version`` with this project and its test extra; write the pinned constraints."""
    with tempfile.TemporaryDirectory(prefix=f"lock-af{version}-") as scratch:
        python = make_venv(Path(scratch) / "venv")
        requirements = [f"apache-airflow=={version}", *MATRIX[version], "-e", "./emulator", "-e", ".[test]"]
        run([str(python), "-m", "pip", "install", "--quiet", *requirements], cwd=REPO)
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--all", "--exclude", "pip", "--exclude-editable"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    header = (
        f"# Airflow {version} on Python {python_version}: the pins of {venv_dir(version).name}.\n"
        f"# Written by `python scripts/matrix.py lock {version}` with pip's resolver; extra pins: "
        f"{', '.join(MATRIX[version]) or 'none'}.\n"
    )
    CONSTRAINTS_DIR.mkdir(exist_ok=True)
    constraints_file(version).write_text(header + frozen)
    print(f"matrix: wrote {constraints_file(version).relative_to(REPO)}", flush=True)


def test_env(version: str) -> dict[str, str]:
    """This environment without its Airflow settings, and an ``AIRFLOW_HOME`` of the version's own."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AIRFLOW", "_AIRFLOW"))}
    home = venv_dir(version) / "airflow_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"  # Airflow's own example DAGs need extras these venvs lack
    return env


def test(version: str) -> tuple[int, float]:
    """Run the matrix tests on Airflow ``version``: pytest's exit code and the seconds it took."""
    python = setup(version)
    started = time.monotonic()
    cmd = [str(python), "-m", "pytest", *PYTEST_ARGS, "tests"]
    print(f"matrix: Airflow {version}:", " ".join(cmd[1:]), flush=True)
    code = subprocess.run(cmd, cwd=REPO, env=test_env(version), check=False).returncode
    return code, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["test", "setup", "lock"], nargs="?", default="test")
    parser.add_argument("versions", nargs="*", metavar="VERSION", help=f"default: all of {', '.join(MATRIX)}")
    args = parser.parse_args(argv)
    unknown = [v for v in args.versions if v not in MATRIX]
    if unknown:
        parser.error(f"not in the matrix: {', '.join(unknown)} (the matrix is {', '.join(MATRIX)})")
    versions = args.versions or list(MATRIX)
    if args.command == "lock":
        for version in versions:
            lock(version)
        return 0
    if args.command == "setup":
        for version in versions:
            setup(version)
        return 0
    started = time.monotonic()
    results = {version: test(version) for version in versions}
    print(f"\nmatrix: {len(versions)} Airflow versions in {time.monotonic() - started:.0f} s", flush=True)
    for version, (code, seconds) in results.items():
        # pytest's exit code 5 (nothing collected) is a failure here: every version must run its tests
        verdict = "passed" if code == 0 else f"FAILED (pytest exit code {code})"
        print(f"  Airflow {version}: {verdict} in {seconds:.0f} s", flush=True)
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
