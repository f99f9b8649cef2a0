"""
Hypothesis profiles for the properties in this folder, chosen by ``HYPOTHESIS_PROFILE`` (default ``ci``).

* ``ci`` (``make unit``/``make test``): derandomized (the examples are a function of the test's name, so
  every run draws the same ones), 60 examples, a deadline per example, the first falsifying example only;
  no example database.
* ``soak``: still derandomized, so a failure is reproduced by re-running with the same profile, but
  ``HYPOTHESIS_SOAK_EXAMPLES`` examples (default 2,000) and no deadline.

A property that fails prints its falsifying example (``print_blob``): paste it as ``@reproduce_failure``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, Phase, settings

from tests.support.example_dags import parsed  # noqa: F401  (a fixture for the clock-edge properties)

_COMMON = {
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# ci stops at the first falsifying example of a property (each property varies one kind of input, so one
# defect class per property); soak looks on for others.
settings.register_profile("ci", max_examples=60, deadline=timedelta(seconds=2), report_multiple_bugs=False, **_COMMON)
settings.register_profile(
    "soak",
    max_examples=int(os.environ.get("HYPOTHESIS_SOAK_EXAMPLES", "2000")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    **_COMMON,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
