"""The command line, one module per command group; `main` and `build_parser` are in `cli`."""

from pipeline.cli.cli import build_parser, main

__all__ = ["build_parser", "main"]
