"""What the command groups share: the configuration arguments and how they are read.

Every command that reads the configuration takes `--config FILE`, any number
of `--set dotted.key=value` and `--verbose`. Without `--config`, the file the
PIPELINE_CONFIG variable names is read, else the group's default: the local
configuration for the commands that run or inspect things on this machine,
the Kubeflow one for the commands that compile for and submit to Kubeflow.

Nothing here imports TensorFlow or TFX: every group's parser is built from
this module on each start, `--help` included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import UserError
from pipeline import config as config_lib
from pipeline.config import CONFIG_ENV

if TYPE_CHECKING:
    # What `ArgumentParser.add_subparsers` returns; each group adds its commands to it.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

# A command: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]


TEXT = "text"
JSON = "json"
# Each command's JSON carries this key: a script checks it before it reads
# the rest, and it changes only when a key is removed or changes meaning.
JSON_FORMAT_KEY = "format"
JSON_FORMAT = 1


class UsageError(UserError):
    """Arguments that do not fit together, or that name something that is not there."""


def add_config_args(parser: argparse.ArgumentParser, default: Path) -> None:
    """Adds `--config`, `--set` and `--verbose` to one command.

    Args:
        parser: The command's parser.
        default: The configuration the command reads when neither --config
            nor PIPELINE_CONFIG names one.
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"YAML configuration (default: ${CONFIG_ENV} if set, else {default})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one dotted key, e.g. --set trainer.train_steps=200 (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print TFX/Beam logs")
    parser.set_defaults(default_config=default)


def config_path(args: argparse.Namespace) -> str:
    """The configuration file a command reads: --config, else PIPELINE_CONFIG, else its default."""
    return str(args.config or os.environ.get(CONFIG_ENV) or args.default_config)


def load_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    """Loads the command's configuration with its `--set` overrides.

    Raises:
        ConfigError: The file, an override or a value is invalid (a UserError).
    """
    return config_lib.load_config(config_path(args), args.overrides)


def at_least_one(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, found {text}")
    return value


def add_output_arg(parser: argparse.ArgumentParser, *extra: str) -> None:
    """Adds `-o/--output text|json` (and `extra` formats) to a command that prints results."""
    parser.add_argument(
        "-o",
        "--output",
        dest="output_format",
        choices=(TEXT, JSON, *extra),
        default=TEXT,
        help="text for people (default), json for scripts: one object on stdout, "
        "documented in docs/cli.md",
    )


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "output_format", TEXT) == JSON)


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has neither (an AUC of one class is NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def print_json(value: dict[str, Any]) -> None:
    """Prints one command's result as a JSON object with its format number."""
    body = {JSON_FORMAT_KEY: JSON_FORMAT, **_finite(value)}
    print(json.dumps(body, indent=2, sort_keys=True, allow_nan=False, default=str))


def say(args: argparse.Namespace, text: str) -> None:
    """Prints a progress line: to stdout for text output, to stderr beside JSON."""
    print(text, file=sys.stderr if wants_json(args) else sys.stdout, flush=True)
