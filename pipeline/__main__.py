"""`python -m pipeline ...` and the `mlops` console script: the command line (pipeline/cli/)."""

from components.process import run_and_exit
from pipeline.cli import main

__all__ = ["main", "run"]


def run() -> None:
    """The console script: runs the command, exits with its status (components/process.py)."""
    run_and_exit(main)


if __name__ == "__main__":
    run()
