"""`python -m pipeline ...`: the command line (pipeline/cli/)."""

import sys

from pipeline.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
