"""
``exampleinclude``: pull a marked part of an example DAG into a page, as the official Airflow providers do.

A ``literalinclude`` that insists on the official marker convention: the example file carries
``# [START name]`` and ``# [END name]`` comments, and the page names them::

    .. exampleinclude:: /../dags_examples/qstash_scheduled_cleanup.py
        :start-after: [START howto_operator_qstash_scheduled_cleanup]
        :end-before: [END howto_operator_qstash_scheduled_cleanup]

Python by default, dedented, captioned with the file's path in the repository. Markers that are not a
matching ``[START x]``/``[END x]`` pair are an error, and so is a marker missing from the file (Sphinx's
``literalinclude`` warns, and ``make docs`` turns warnings into errors).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.directives.code import LiteralInclude

_START = re.compile(r"^\[START (?P<name>[A-Za-z0-9_]+)\]$")
_END = re.compile(r"^\[END (?P<name>[A-Za-z0-9_]+)\]$")


class ExampleInclude(LiteralInclude):
    """``literalinclude`` between ``[START name]`` and ``[END name]`` markers of an example file."""

    def run(self) -> list[nodes.Node]:
        start = _START.match(self.options.get("start-after", ""))
        end = _END.match(self.options.get("end-before", ""))
        if not start or not end or start["name"] != end["name"]:
            raise self.error(
                "exampleinclude needs :start-after: [START name] and :end-before: [END name] with the same name."
            )
        self.options.setdefault("language", "python")
        self.options.setdefault("dedent", None)  # as much as the marked lines share
        if "caption" not in self.options:
            env = self.state.document.settings.env
            _, path = env.relfn2path(self.arguments[0])
            repo = Path(env.srcdir).parent
            self.options["caption"] = Path(path).resolve().relative_to(repo.resolve()).as_posix()
        return super().run()


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("exampleinclude", ExampleInclude)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
