"""Command line: `python -m pipeline run|schema infer|config`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from pipeline.logs import quiet_tensorflow

quiet_tensorflow()

# Imported after quiet_tensorflow(): these pull in TensorFlow.
from pipeline import config as config_lib  # noqa: E402
from pipeline import definition, logs  # noqa: E402
from pipeline.progress import NodeResult  # noqa: E402
from pipeline.summary import RunSummary  # noqa: E402


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help=f"YAML configuration (default: {config_lib.DEFAULT_CONFIG})"
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


def _print_node(total: int) -> object:
    count = 0

    def report(result: NodeResult) -> None:
        nonlocal count
        count += 1
        state = {"COMPLETE": "done", "CACHED": "cached"}.get(result.state, result.state.lower())
        print(
            f"[{count:2d}/{total}] {result.node_id:<18} {state:<7} {result.seconds:7.1f}s",
            flush=True,
        )

    return report


def _print_summary(summary: RunSummary) -> None:
    if summary.metrics:
        shown = ", ".join(
            f"{name} {summary.metrics[name]:.4f}"
            for name in ("auc", "binary_accuracy", "precision", "recall")
            if name in summary.metrics
        )
        count = int(summary.metrics.get("example_count", 0))
        print(f"eval metrics ({count} eval examples): {shown}")
    if summary.baseline_metrics:
        print(
            f"baseline (model {summary.baseline_model_id}): auc "
            f"{summary.baseline_metrics.get('auc', float('nan')):.4f}"
        )
    if summary.blessed is not None:
        verdict = "BLESSED" if summary.blessed else "NOT BLESSED"
        print(f"{verdict}: " + "; ".join(summary.reasons))
    pusher_cached = any(
        n.node_id == definition.PUSHER and n.state == "CACHED" for n in summary.nodes
    )
    if summary.pushed_uri:
        when = " (by an earlier run; this one reused it from cache)" if pusher_cached else ""
        print(f"pushed: {summary.pushed_uri}{when}")
    elif summary.blessed is not None:
        print("pushed: nothing (the model was not blessed)")


def _run(args: argparse.Namespace) -> int:
    from pipeline.runners import local

    config = config_lib.load_config(args.config, args.overrides)
    log_file = f"{config.run.pipeline_root}/logs/run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    logs.configure(log_file, args.verbose)
    metadata = config.metadata
    store = (
        metadata.sqlite_path if metadata.kind == "sqlite" else f"{metadata.kind}:{metadata.host}"
    )
    print(
        f"pipeline {config.run.pipeline_name}: root {config.run.pipeline_root}, "
        f"metadata {store}, registry {config.serving_model_dir}",
        flush=True,
    )
    started = time.monotonic()
    try:
        summary = local.run(config, report=_print_node(len(definition.NODE_IDS)))  # type: ignore[arg-type]
    except local.PipelineRunError as error:
        print(f"FAILED at {error.node_id}: {error.reason}", file=sys.stderr)
        print(f"full log: {log_file}", file=sys.stderr)
        return 1
    _print_summary(summary)
    print(f"finished in {time.monotonic() - started:.1f}s; full log: {log_file}")
    return 0


def _schema_infer(args: argparse.Namespace) -> int:
    from pipeline.schema_infer import infer_schema

    config = config_lib.load_config(args.config, args.overrides)
    logs.configure(f"{config.run.pipeline_root}/logs/schema-infer.log", args.verbose)
    path = infer_schema(config, args.output)
    print(f"draft schema written to {path}")
    print(f"curate it by hand, then replace {config.data.schema_file}")
    return 0


def _show_config(args: argparse.Namespace) -> int:
    import yaml

    config = config_lib.load_config(args.config, args.overrides)
    print(yaml.safe_dump(config_lib.to_dict(config), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline locally")
    _add_config_args(run)
    run.set_defaults(handler=_run)

    schema = commands.add_parser("schema", help="schema tools")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True)
    infer = schema_commands.add_parser("infer", help="infer a draft schema from the data")
    _add_config_args(infer)
    infer.add_argument("--output", default="build/schema_draft.pbtxt", help="draft schema path")
    infer.set_defaults(handler=_schema_infer)

    show = commands.add_parser("config", help="print the resolved configuration")
    _add_config_args(show)
    show.set_defaults(handler=_show_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except config_lib.ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        # Set-up problems found before any component runs (an unreadable
        # schema, a store the runner cannot use); component failures are
        # reported by the handlers themselves.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
