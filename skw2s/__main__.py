"""``python -m skw2s``: the ``skw2s`` command (:func:`skw2s.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
