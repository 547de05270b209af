"""`python -m pipeline lineage model|examples|runs`.

The store is the configured one (`metadata.*`): the local SQLite file, a
MySQL/MariaDB server (password from `metadata.password_env`), or Kubeflow's
metadata-grpc-service (`metadata.kind=grpc`, through `kubectl port-forward`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from pipeline import config as config_lib

FORMATS = ("tree", "json", "dot", "mermaid")


class StoreUnreachableError(RuntimeError):
    """The ML Metadata store cannot be opened or queried."""


def _lineage(args: argparse.Namespace) -> tuple[config_lib.PipelineConfig, Any]:
    from pipeline.lineage.graph import MetadataGraph
    from pipeline.lineage.queries import Lineage
    from pipeline.mlmd_queries import open_for_reading

    config = config_lib.load_config(args.config, args.overrides)
    metadata = config.metadata
    where = (
        f"sqlite {metadata.sqlite_path}"
        if metadata.kind == "sqlite"
        else f"{metadata.kind} {metadata.host}:{metadata.port}"
    )
    try:
        store = open_for_reading(metadata)  # MySQL connects here, gRPC lazily
        store.get_context_types()  # the first real round trip
    except FileNotFoundError as e:
        raise StoreUnreachableError(
            f"ML Metadata ({where}): no such file; run the pipeline first or set "
            "metadata.sqlite_path"
        ) from e
    except Exception as e:  # MLMD raises its own error types per backend
        raise StoreUnreachableError(f"ML Metadata ({where}) unreachable: {e}") from e
    return config, Lineage(MetadataGraph(store))


def _print(value: Any, fmt: str, tree: Callable[[Any], str]) -> None:
    if fmt == "json":
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        print(tree(value))


def _model(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    config, lineage = _lineage(args)
    model = lineage.resolve_model(args.model, config.serving_model_dir)
    result = lineage.model(model)
    if args.format == "dot":
        print(render.model_dot(result))
    elif args.format == "mermaid":
        print(render.model_mermaid(result))
    else:
        _print(result, "json" if args.json else args.format, render.model_tree)
    return 0


def _examples(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    _, lineage = _lineage(args)
    result = lineage.examples(lineage.resolve_examples(args.examples))
    _print(result, "json" if args.json else "tree", render.examples_tree)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipeline.lineage import render

    config, lineage = _lineage(args)
    runs = lineage.runs(config.run.pipeline_name)
    if not runs and not args.json:
        print(f"no runs of pipeline {config.run.pipeline_name!r} in ML Metadata")
        return 0
    _print(runs, "json" if args.json else "tree", render.runs_table)
    return 0


def add_commands(commands: Any, add_config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds `lineage ...` to the `python -m pipeline` subcommands."""
    lineage = commands.add_parser("lineage", help="trace models and data in ML Metadata")
    sub = lineage.add_subparsers(dest="lineage_command", required=True)

    model = sub.add_parser("model", help="what a pushed model came from (upstream)")
    model.add_argument(
        "model",
        nargs="?",
        default="latest",
        help="registry version, latest, or id:<ML Metadata id of a Model> (default: latest)",
    )
    model.add_argument("--format", choices=FORMATS, default="tree")
    model.add_argument("--json", action="store_true", help="same as --format json")
    model.set_defaults(handler=_model)

    examples = sub.add_parser("examples", help="the models trained on some examples (downstream)")
    examples.add_argument("examples", help="ML Metadata id or URI of an Examples artifact")
    examples.add_argument("--json", action="store_true")
    examples.set_defaults(handler=_examples)

    runs = sub.add_parser("runs", help="the pipeline's runs: status, start, end, pushes")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=_runs)

    for parser in (model, examples, runs):
        add_config_args(parser)
