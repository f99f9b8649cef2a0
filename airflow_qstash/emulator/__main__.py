"""``python -m airflow_qstash.emulator``: see :mod:`airflow_qstash.emulator.cli`."""

import sys

from airflow_qstash.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
