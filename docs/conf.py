"""Sphinx configuration of the airflow-provider-qstash docs (``make docs``: warnings are errors).

Offline by design: no intersphinx, no remote images. The benchmark plots are drawn from the JSON under
``docs/_data/`` by ``bench/plot.py`` when the build starts (only those missing or older than their JSON).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO), str(DOCS / "exts"), str(REPO / "bench")]
# Importing the provider for autodoc imports Airflow, which wants a home; keep it inside the checkout.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow_home"))

import plot  # noqa: E402  (bench/plot.py)

import airflow_qstash  # noqa: E402

project = "airflow-provider-qstash"
author = "airflow-provider-qstash contributors"
copyright = "the airflow-provider-qstash contributors, Apache-2.0"
release = airflow_qstash.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "exampleinclude",
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_data", "exts", "Thumbs.db", ".DS_Store"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

myst_heading_anchors = 3

# Where the emulator lives and listens, said once: pages write |emulator_module|, |emulator_port|,
# |emulator_url| (literals) and, inside ``parsed-literal`` blocks, |emulator_run| / |emulator_import|.
EMULATOR_MODULE = "qstash_emulator"
EMULATOR_PORT = 8787
rst_prolog = f"""
.. |emulator_module| replace:: ``{EMULATOR_MODULE}``
.. |emulator_port| replace:: ``{EMULATOR_PORT}``
.. |emulator_url| replace:: ``http://127.0.0.1:{EMULATOR_PORT}``
.. |emulator_run| replace:: python -m {EMULATOR_MODULE} --port {EMULATOR_PORT}
.. |emulator_host| replace:: http://127.0.0.1:{EMULATOR_PORT}
.. |emulator_import| replace:: from {EMULATOR_MODULE} import FaultConfig, QStashEmulator
"""

html_theme = "furo"
html_title = f"airflow-provider-qstash {release}"
html_static_path: list[str] = []  # the plots are images of the pages, copied by the image directive
html_show_sourcelink = False


def _draw_plots(app: object) -> None:
    plot.build()


def setup(app: object) -> None:
    app.connect("builder-inited", _draw_plots)  # type: ignore[attr-defined]
