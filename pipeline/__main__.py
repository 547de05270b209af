"""Command line: `python -m pipeline run|compile|submit|schedule|registry|lineage|predict ...`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.logs import quiet_tensorflow

quiet_tensorflow()

# Imported after quiet_tensorflow(): these pull in TensorFlow.
from pipeline import config as config_lib  # noqa: E402
from pipeline import definition, logs, registry_cli  # noqa: E402
from pipeline.kubeflow.client import KubeflowError  # noqa: E402
from pipeline.lineage.commands import StoreUnreachableError  # noqa: E402
from pipeline.lineage.commands import add_commands as add_lineage_commands  # noqa: E402
from pipeline.progress import NodeResult  # noqa: E402
from pipeline.serving.client import ServingError  # noqa: E402
from pipeline.serving.commands import add_commands as add_serving_commands  # noqa: E402
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


def _add_kubeflow_config_args(parser: argparse.ArgumentParser) -> None:
    _add_config_args(parser)
    parser.set_defaults(config=str(config_lib.CONFIG_DIR / "kubeflow.yaml"))


def _compile_with_image(
    args: argparse.Namespace, config: config_lib.PipelineConfig, output: str, fmt: str = "yaml"
) -> tuple[Path, str]:
    """Compiles with --image, else kubeflow.image:<git revision>; returns (path, image)."""
    from pipeline.kubeflow import compile as kfp_compile
    from pipeline.kubeflow.image import image_reference

    image = args.image or image_reference(config)
    return kfp_compile.compile_to_file(config, image, output, fmt), image


def _compile(args: argparse.Namespace) -> int:
    config = config_lib.load_config(args.config, args.overrides)
    logs.configure("build/logs/kubeflow.log", args.verbose)
    path, image = _compile_with_image(args, config, args.output, args.format)
    print(f"compiled {config.run.pipeline_name} ({args.format}) with image {image}: {path}")
    return 0


def _image(args: argparse.Namespace) -> int:
    from pipeline.kubeflow.image import image_reference

    config = config_lib.load_config(args.config, args.overrides)
    print(image_reference(config))
    return 0


def _package(args: argparse.Namespace, config: config_lib.PipelineConfig) -> tuple[Path, str]:
    """The package to upload: --package, else a fresh compile; returns (path, revision)."""
    if args.package:
        path = Path(args.package)
        if not path.is_file():
            raise ValueError(f"--package {path}: no such file")
        from pipeline.kubeflow.image import image_reference

        return path, (args.image or image_reference(config)).rsplit(":", 1)[-1]
    path, image = _compile_with_image(args, config, "build/kubeflow/pipeline.yaml")
    print(f"compiled with image {image}: {path}")
    return path, image.rsplit(":", 1)[-1]


def _kubeflow_session(args: argparse.Namespace) -> tuple:
    """Loads the config and connects; returns (config, connection, kfp client)."""
    from pipeline.kubeflow import client as kfp_client

    config = config_lib.load_config(args.config, args.overrides)
    logs.configure("build/logs/kubeflow.log", args.verbose)
    conn = kfp_client.connection(config)
    print(f"KFP {conn.endpoint} namespace {conn.namespace} (token: {conn.token_source})")
    return config, conn, kfp_client.make_client(conn)


def _submit(args: argparse.Namespace) -> int:
    from pipeline.kubeflow import client as kfp_client

    config, conn, client = _kubeflow_session(args)
    package, revision = _package(args, config)
    parameters = definition.runtime_parameter_defaults(config)
    experiment = args.experiment or config.kubeflow.experiment
    run_name = args.run_name or kfp_client.version_name(f"{config.run.pipeline_name}-{revision}")
    submitted = kfp_client.submit(
        client, config, package, revision, parameters, experiment, run_name, conn.namespace
    )
    print(
        f"run {run_name} ({submitted.run_id}) in experiment {experiment}: pipeline "
        f"{config.run.pipeline_name} version {submitted.version_id}, root "
        f"{config.run.pipeline_root}, parameters {json.dumps(parameters, sort_keys=True)}"
    )
    print(f"details: {submitted.url}")
    if args.wait:
        kfp_client.wait(client, submitted.run_id, args.timeout, args.poll)
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from pipeline.kubeflow import client as kfp_client
    from pipeline.kubeflow.cron import check_cron

    if not (args.cron or args.disable or args.delete):
        raise ValueError("--cron is required to create or update a recurring run")
    cron = check_cron(args.cron) if args.cron else ""
    config, conn, client = _kubeflow_session(args)
    name = args.name or f"{config.run.pipeline_name}-recurring"
    experiment = args.experiment or config.kubeflow.experiment
    eid = kfp_client.experiment_id(client, experiment, conn.namespace)
    if args.delete:
        result = kfp_client.delete_schedule(client, eid, name)
    elif args.disable:
        result = kfp_client.disable_schedule(client, eid, name, experiment)
    else:
        package, revision = _package(args, config)
        parameters = definition.runtime_parameter_defaults(config)
        result = kfp_client.apply_schedule(
            client, config, eid, name, package, revision, parameters, cron
        )
    what = f" ({result.recurring_run_id})" if result.recurring_run_id else ""
    when = f", cron {cron!r}" if result.action in ("created", "replaced", "unchanged") else ""
    print(f"recurring run {name!r} in experiment {experiment!r}: {result.action}{what}{when}")
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

    compile_ = commands.add_parser(
        "compile", help="compile for Kubeflow Pipelines v2 (default config: kubeflow.yaml)"
    )
    _add_kubeflow_config_args(compile_)
    compile_.add_argument("--output", default="pipeline.yaml", help="file to write")
    compile_.add_argument(
        "--format",
        choices=("yaml", "vertex"),
        default="yaml",
        help="yaml: the bare PipelineSpec open-source KFP takes; vertex: a PipelineJob JSON",
    )
    compile_.add_argument(
        "--image", help="component image reference (default: kubeflow.image:<git revision>)"
    )
    compile_.set_defaults(handler=_compile)

    image = commands.add_parser(
        "image", help="print the component image reference (repository:git-revision)"
    )
    _add_kubeflow_config_args(image)
    image.set_defaults(handler=_image)

    for command, helptext in (
        ("submit", "upload a new pipeline version and start a run on Kubeflow"),
        ("schedule", "create, update, disable or delete a recurring run on Kubeflow"),
    ):
        sub = commands.add_parser(command, help=helptext)
        _add_kubeflow_config_args(sub)
        sub.add_argument("--experiment", help="experiment (default: kubeflow.experiment)")
        sub.add_argument("--image", help="image reference (default: kubeflow.image:<git revision>)")
        sub.add_argument("--package", help="an already compiled pipeline.yaml to upload")
        if command == "submit":
            sub.add_argument("--run-name", help="run name (default: <pipeline>-<revision>-<time>)")
            sub.add_argument(
                "--wait", action="store_true", help="follow the run; exit 1 if it fails"
            )
            sub.add_argument("--timeout", type=float, default=4 * 3600, help="--wait limit, s")
            sub.add_argument("--poll", type=float, default=15, help="--wait poll interval, s")
            sub.set_defaults(handler=_submit)
        else:
            sub.add_argument("--cron", help="KFP cron, 6 fields, seconds first: '0 0 2 * * *'")
            sub.add_argument("--name", help="recurring run name (default: <pipeline>-recurring)")
            mode = sub.add_mutually_exclusive_group()
            mode.add_argument("--disable", action="store_true", help="disable it")
            mode.add_argument("--delete", action="store_true", help="delete it")
            sub.set_defaults(handler=_schedule)

    show = commands.add_parser("config", help="print the resolved configuration")
    _add_config_args(show)
    show.set_defaults(handler=_show_config)

    registry_cli.add_commands(commands, _add_config_args)
    add_serving_commands(commands)
    add_lineage_commands(commands, _add_config_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except config_lib.ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except (KubeflowError, ServingError, StoreUnreachableError) as error:
        # A remote system failed: the Kubeflow API or a followed run, TF
        # Serving, or the ML Metadata store.
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # Set-up problems found before any component runs (an unreadable
        # schema, a store the runner cannot use); component failures are
        # reported by the handlers themselves.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
