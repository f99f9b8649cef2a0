"""The wheel that ``python -m build`` makes installs into a fresh venv and works there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with the setuptools already installed (CI has no index other than PyPI,
    # but this keeps the test fast and independent of it).
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (built,) = out.glob("airflow_provider_qstash-*.whl")
    return built


def test_wheel_ships_every_module_py_typed_and_the_provider_entry_point(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "airflow_qstash/__init__.py",
        "airflow_qstash/py.typed",
        "airflow_qstash/filters.py",
        "airflow_qstash/batching.py",
        "airflow_qstash/get_provider_info.py",
        "airflow_qstash/hooks/qstash.py",
        "airflow_qstash/operators/qstash.py",
        "airflow_qstash/triggers/qstash.py",
        "airflow_qstash/emulator/__main__.py",
    ):
        assert module in names, module
    assert not any(name.startswith(("tests/", "dags_examples/", "bench/")) for name in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    assert "provider_info = airflow_qstash.get_provider_info:get_provider_info" in text


def test_wheel_installs_and_works_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (Airflow and friends) come from this test run's environment, appended after the
    # fresh venv's own site-packages; .pth files there (our editable install) are not processed.
    Path(fresh_site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", fresh_site, str(wheel)],
        check=True,
        timeout=120,
    )
    probe = (
        "import importlib.metadata as md, airflow_qstash, json;"
        "ep = [e for e in md.entry_points(group='apache_airflow_provider') if e.value.startswith('airflow_qstash')];"
        "info = ep[0].load()();"
        "from airflow_qstash.hooks.qstash import QStashHook;"
        "from airflow_qstash.operators.qstash import QStashBulkCancelOperator;"
        "print(json.dumps([airflow_qstash.__file__, info['package-name'], md.version('airflow-provider-qstash')]))"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, package_name, version = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert module_file.startswith(fresh_site), module_file  # the wheel's copy, not the editable checkout
    assert package_name == "airflow-provider-qstash"
    assert version == __import__("airflow_qstash").__version__
