"""``python -m qstash_emulator``: see :mod:`qstash_emulator.cli`."""

import sys

from qstash_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
