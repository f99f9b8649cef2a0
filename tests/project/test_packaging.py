"""The wheels that ``python -m build`` makes (the provider and the emulator) install into a fresh venv and work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(source: Path, out: Path, pattern: str) -> Path:
    # --no-isolation: build with the setuptools already installed (CI has no index other than PyPI,
    # but this keeps the test fast and independent of it).
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (built,) = out.glob(pattern)
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("dist"), "airflow_provider_qstash-*.whl")


@pytest.fixture(scope="module")
def emulator_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(
        ROOT / "emulator", tmp_path_factory.mktemp("dist_emulator"), "airflow_provider_qstash_emulator-*.whl"
    )


def fresh_venv(env_dir: Path, *wheels: Path) -> tuple[Path, str]:
    """A venv at ``env_dir`` with ``wheels`` installed (no deps); the dependencies come from this test run's
    environment, appended after the fresh venv's own site-packages, where .pth files (our editable installs)
    are not processed. Returns its python and its site-packages."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(fresh_site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--ignore-installed",
            *map(str, wheels),
        ],
        check=True,
        timeout=120,
        env=without_checkout(),  # pip would take an egg-info of the checkout for the installed distribution
    )
    return python, fresh_site


def without_checkout() -> dict[str, str]:
    """This environment without ``PYTHONPATH``: no checkout of the repository on the path."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def requires_dist(wheel: Path) -> list[str]:
    archive = zipfile.ZipFile(wheel)
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    lines = archive.read(metadata).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def dist_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)).lower()  # type: ignore[union-attr]


def test_wheel_ships_every_module_py_typed_and_the_provider_entry_point(wheel: Path) -> None:
    """Every module of the source tree (subpackages such as ``protocol/`` and ``runs/`` included) is in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    package = Path(__file__).resolve().parents[2] / "airflow_qstash"
    modules = {path.relative_to(package.parent).as_posix() for path in package.rglob("*.py")}
    assert {"airflow_qstash/protocol/calls.py", "airflow_qstash/runs/bulk_cancel.py"} <= modules
    assert modules - names == set()
    assert "airflow_qstash/py.typed" in names
    assert not any("emulator" in name for name in names), sorted(n for n in names if "emulator" in n)
    assert not any(name.startswith(("tests/", "dags_examples/", "bench/")) for name in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    assert "provider_info = airflow_qstash.get_provider_info:get_provider_info" in text


def test_provider_wheel_requires_none_of_the_emulator_web_stack(wheel: Path) -> None:
    requires = requires_dist(wheel)
    base = {dist_name(r) for r in requires if "extra ==" not in r}
    assert "apache-airflow" in base
    assert base.isdisjoint({"starlette", "uvicorn", "airflow-provider-qstash-emulator"}), sorted(base)
    emulator_extra = [dist_name(r) for r in requires if re.search(r"extra\s*==\s*['\"]emulator['\"]", r)]
    assert emulator_extra == ["airflow-provider-qstash-emulator"]


def test_emulator_wheel_installs_alone_and_its_console_script_serves(emulator_wheel: Path, tmp_path: Path) -> None:
    """The emulator's wheel, alone in a fresh venv (no ``airflow_qstash`` there): ``qstash-emulator`` starts,
    answers its health route and stops on SIGTERM."""
    names = set(zipfile.ZipFile(emulator_wheel).namelist())
    assert {"qstash_emulator/__main__.py", "qstash_emulator/cli.py", "qstash_emulator/py.typed"} <= names
    assert not any(name.startswith(("airflow_qstash/", "tests/")) for name in names)
    assert {dist_name(r) for r in requires_dist(emulator_wheel)} == {"starlette", "uvicorn"}
    python, fresh_site = fresh_venv(tmp_path / "fresh", emulator_wheel)
    alone = without_checkout()
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, qstash_emulator;"
            "print(qstash_emulator.__file__, u.find_spec('airflow_qstash'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=alone,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    module_file, airflow_qstash_spec = probe.stdout.split()
    assert module_file.startswith(fresh_site) and airflow_qstash_spec == "None"
    script = python.parent / "qstash-emulator"
    proc = subprocess.Popen(
        [str(script), "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=alone,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("QStash emulator ready at http://127.0.0.1:"), ready
        with urllib.request.urlopen(ready.rsplit(" ", 1)[1].strip() + "/_emulator/health", timeout=10) as answer:
            assert answer.status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_wheel_installs_and_works_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    python, fresh_site = fresh_venv(tmp_path / "fresh", wheel)
    probe = (
        "import importlib.metadata as md, airflow_qstash, json;"
        "ep = [e for e in md.entry_points(group='apache_airflow_provider') if e.value.startswith('airflow_qstash')];"
        "info = ep[0].load()();"
        "from airflow_qstash.hooks.qstash import QStashHook;"
        "from airflow_qstash.operators.qstash import QStashBulkCancelOperator;"
        "print(json.dumps([airflow_qstash.__file__, info['package-name'], md.version('airflow-provider-qstash')]))"
    )
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=without_checkout()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, package_name, version = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert module_file.startswith(fresh_site), module_file  # the wheel's copy, not the editable checkout
    assert package_name == "airflow-provider-qstash"
    assert version == __import__("airflow_qstash").__version__
