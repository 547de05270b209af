"""`compile`, `image`, `submit` and `schedule`: the pipeline on Kubeflow Pipelines v2.

These commands read `pipeline/configs/kubeflow.yaml` by default. Whatever is
compiled (by `compile`, or by `submit` and `schedule` without --package) is
checked first (`pipeline.preflight`, without the data, which lives remotely).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import config as config_lib
from pipeline import logs
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.kubeflow.client import Connection

LOG_FILE = "build/logs/kubeflow.log"
PACKAGE = "build/kubeflow/pipeline.yaml"


def register(commands: Commands) -> None:
    """Adds `compile`, `image`, `submit` and `schedule` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    compile_ = commands.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines v2")
    common.add_config_args(compile_, config_lib.KUBEFLOW_CONFIG)
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
    common.add_config_args(image, config_lib.KUBEFLOW_CONFIG)
    image.set_defaults(handler=_image)

    for command, helptext in (
        ("submit", "upload a new pipeline version and start a run on Kubeflow"),
        ("schedule", "create, update, disable or delete a recurring run on Kubeflow"),
    ):
        sub = commands.add_parser(command, help=helptext)
        common.add_config_args(sub, config_lib.KUBEFLOW_CONFIG)
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
            common.add_output_arg(sub)
            sub.set_defaults(handler=_submit)
        else:
            sub.add_argument("--cron", help="KFP cron, 6 fields, seconds first: '0 0 2 * * *'")
            sub.add_argument("--name", help="recurring run name (default: <pipeline>-recurring)")
            sub.add_argument(
                "--max-concurrency",
                type=common.at_least_one,
                default=1,
                help="runs of it at once (default: 1, a late run is never overlapped)",
            )
            sub.add_argument(
                "--catchup",
                action="store_true",
                help="start the runs missed while it was disabled or down "
                "(default: only the next one)",
            )
            mode = sub.add_mutually_exclusive_group()
            mode.add_argument("--disable", action="store_true", help="disable it")
            mode.add_argument("--enable", action="store_true", help="enable it again")
            mode.add_argument("--delete", action="store_true", help="delete it")
            sub.set_defaults(handler=_schedule)


def _compile_with_image(
    args: argparse.Namespace, config: PipelineConfig, output: str, fmt: str = "yaml"
) -> tuple[Path, str]:
    """Checks, then compiles with --image, else kubeflow.image:<git revision>.

    Returns:
        The compiled file and the image reference it names.
    """
    from pipeline import preflight
    from pipeline.kubeflow import compile as kfp_compile
    from pipeline.kubeflow.image import image_reference

    preflight.check(config, local=False)
    image = args.image or image_reference(config)
    return kfp_compile.compile_to_file(config, image, output, fmt), image


def _compile(args: argparse.Namespace) -> int:
    config = common.load_config(args)
    logs.configure(LOG_FILE, args.verbose)
    path, image = _compile_with_image(args, config, args.output, args.format)
    print(f"compiled {config.run.pipeline_name} ({args.format}) with image {image}: {path}")
    return 0


def _image(args: argparse.Namespace) -> int:
    from pipeline.kubeflow.image import image_reference

    print(image_reference(common.load_config(args)))
    return 0


def _package(args: argparse.Namespace, config: PipelineConfig) -> tuple[Path, str]:
    """The package to upload: --package, else a fresh compile; returns (path, revision).

    Raises:
        UsageError: --package names no file.
    """
    if args.package:
        from pipeline.kubeflow.image import image_reference

        path = Path(args.package)
        if not path.is_file():
            raise common.UsageError(f"--package {path}: no such file")
        return path, (args.image or image_reference(config)).rsplit(":", 1)[-1]
    path, image = _compile_with_image(args, config, PACKAGE)
    common.say(args, f"compiled with image {image}: {path}")
    return path, image.rsplit(":", 1)[-1]


def _kubeflow_session(args: argparse.Namespace) -> tuple[PipelineConfig, Connection, Any]:
    """Loads the config and connects; returns (config, connection, kfp client)."""
    from pipeline.kubeflow import client as kfp_client

    config = common.load_config(args)
    logs.configure(LOG_FILE, args.verbose)
    conn = kfp_client.connection(config)
    common.say(args, f"KFP {conn.endpoint} namespace {conn.namespace} (token: {conn.token_source})")
    return config, conn, kfp_client.make_client(conn)


def _submit(args: argparse.Namespace) -> int:
    from pipeline import definition
    from pipeline.kubeflow import client as kfp_client

    config, conn, client = _kubeflow_session(args)
    package, revision = _package(args, config)
    parameters = definition.runtime_parameter_defaults(config)
    experiment = args.experiment or config.kubeflow.experiment
    run_name = args.run_name or kfp_client.version_name(f"{config.run.pipeline_name}-{revision}")
    submitted = kfp_client.submit(
        client, config, package, revision, parameters, experiment, run_name, conn.namespace
    )
    common.say(
        args,
        f"run {run_name} ({submitted.run_id}) in experiment {experiment}: pipeline "
        f"{config.run.pipeline_name} version {submitted.version_id}, root "
        f"{config.run.pipeline_root}, parameters {json.dumps(parameters, sort_keys=True)}",
    )
    common.say(args, f"details: {submitted.url}")
    state, failure = None, None
    if args.wait:
        try:
            state = kfp_client.wait(
                client,
                submitted.run_id,
                args.timeout,
                args.poll,
                report=lambda t: common.say(args, t),
            )
        except kfp_client.RunFailed as failed:
            state, failure = failed.state, failed
    if common.wants_json(args):
        # The object is printed for a failed run too: scripts read its state.
        common.print_json(
            {
                "run_id": submitted.run_id,
                "run_name": run_name,
                "experiment": experiment,
                "pipeline": config.run.pipeline_name,
                "version_id": submitted.version_id,
                "pipeline_root": config.run.pipeline_root,
                "parameters": parameters,
                "url": submitted.url,
                "state": state,
            }
        )
    if failure is not None:
        raise failure
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from pipeline import definition
    from pipeline.kubeflow import client as kfp_client
    from pipeline.kubeflow.cron import check_cron

    if not (args.cron or args.disable or args.enable or args.delete):
        raise common.UsageError("--cron is required to create or update a recurring run")
    switch = next(
        (
            f
            for f, on in (
                ("--disable", args.disable),
                ("--enable", args.enable),
                ("--delete", args.delete),
            )
            if on
        ),
        None,
    )
    ignored = [
        flag
        for flag, given in (
            ("--cron", args.cron),
            ("--max-concurrency", args.max_concurrency != 1),
            ("--catchup", args.catchup),
        )
        if given
    ]
    if switch and ignored:
        raise common.UsageError(
            f"{switch} acts on the recurring run as it is; {', '.join(ignored)} would be "
            "ignored (apply them with --cron, without " + switch + ")"
        )
    cron = check_cron(args.cron) if args.cron else ""
    config, conn, client = _kubeflow_session(args)
    name = args.name or f"{config.run.pipeline_name}-recurring"
    experiment = args.experiment or config.kubeflow.experiment
    eid = kfp_client.experiment_id(client, experiment, conn.namespace)
    if args.delete:
        result = kfp_client.delete_schedule(client, eid, name)
    elif args.disable:
        result = kfp_client.disable_schedule(client, eid, name, experiment)
    elif args.enable:
        result = kfp_client.enable_schedule(client, eid, name, experiment)
    else:
        package, revision = _package(args, config)
        parameters = definition.runtime_parameter_defaults(config)
        trigger = kfp_client.Trigger(cron, args.max_concurrency, args.catchup)
        result = kfp_client.apply_schedule(
            client, config, eid, name, package, revision, parameters, trigger
        )
    what = f" ({result.recurring_run_id})" if result.recurring_run_id else ""
    when = f", cron {cron!r}" if result.action in ("created", "replaced", "unchanged") else ""
    print(f"recurring run {name!r} in experiment {experiment!r}: {result.action}{what}{when}")
    return 0
