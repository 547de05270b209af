"""`lineage model|examples|runs`: trace models and data through ML Metadata.

The store is the configured one (`metadata.*`, see `pipeline.lineage.store`);
the questions and their answers are `pipeline.lineage.queries`', the
renderings (tree, JSON, Graphviz dot, Mermaid) `pipeline.lineage.render`'s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline import config as config_lib
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.lineage.queries import Lineage

# `text` is the tree; `tree` and `--format` stay accepted for older scripts.
GRAPH_FORMATS = ("dot", "mermaid")


def register(commands: Commands) -> None:
    """Adds `lineage model|examples|runs` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    lineage = commands.add_parser("lineage", help="trace models and data in ML Metadata")
    sub = lineage.add_subparsers(dest="lineage_command", metavar="COMMAND", required=True)

    model = sub.add_parser("model", help="what a pushed model came from (upstream)")
    model.add_argument(
        "model",
        nargs="?",
        default="latest",
        help="registry version, latest, or id:<ML Metadata id of a Model> (default: latest)",
    )
    model.add_argument(
        "-o",
        "--output",
        "--format",
        dest="output_format",
        choices=(common.TEXT, common.JSON, *GRAPH_FORMATS, "tree"),
        default=common.TEXT,
        help="text: a tree (default); json for scripts (docs/cli.md); dot or mermaid: a graph",
    )
    model.add_argument("--json", action="store_true", help="same as -o json")
    model.set_defaults(handler=_model)

    examples = sub.add_parser("examples", help="the models trained on some examples (downstream)")
    examples.add_argument("examples", help="ML Metadata id or URI of an Examples artifact")
    examples.set_defaults(handler=_examples)

    runs = sub.add_parser("runs", help="the pipeline's runs: status, start, end, pushes")
    runs.set_defaults(handler=_runs)

    for parser in (examples, runs):
        common.add_output_arg(parser)
        parser.add_argument("--json", action="store_true", help="same as -o json")

    for parser in (model, examples, runs):
        common.add_config_args(parser, config_lib.DEFAULT_CONFIG)


def _lineage(args: argparse.Namespace) -> tuple[PipelineConfig, Lineage]:
    from pipeline.lineage.store import open_lineage

    config = common.load_config(args)
    return config, open_lineage(config.metadata)


def _print(args: argparse.Namespace, key: str, value: Any, tree: Callable[[Any], str]) -> None:
    if args.json or common.wants_json(args):
        # An answer that is an object is printed as it is, with its format number.
        common.print_json(value if isinstance(value, dict) else {key: value})
    else:
        print(tree(value))


def _model(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    config, lineage = _lineage(args)
    model = lineage.resolve_model(args.model, config.serving_model_dir)
    result = lineage.model(model)
    if args.output_format == "dot":
        print(render.model_dot(result))
    elif args.output_format == "mermaid":
        print(render.model_mermaid(result))
    else:
        _print(args, "model", result, render.model_tree)
    return 0


def _examples(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    _, lineage = _lineage(args)
    result = lineage.examples(lineage.resolve_examples(args.examples))
    _print(args, "examples", result, render.examples_tree)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    config, lineage = _lineage(args)
    runs = lineage.runs(config.run.pipeline_name)
    if not runs and not (args.json or common.wants_json(args)):
        print(f"no runs of pipeline {config.run.pipeline_name!r} in ML Metadata")
        return 0
    _print(args, "runs", runs, render.runs_table)
    return 0
