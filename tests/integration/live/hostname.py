"""
``[core] hostname_callable`` for several Airflow processes on one machine, each under its own name.

Task instances record the host that ran them and triggerer jobs the host they run on; with two Celery
workers and two triggerers on one machine those would all be the machine's name. Each process started
with ``QSTASH_LIVE_HOSTNAME`` set reports that name instead, so a test can tell which worker ran a task
and which triggerer holds a trigger. Kept free of imports beyond the standard library: every Airflow
process of the deployment imports it.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "QSTASH_LIVE_HOSTNAME"


def from_env() -> str:
    """The name in ``QSTASH_LIVE_HOSTNAME``, else the machine's fully qualified name (Airflow's default)."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
