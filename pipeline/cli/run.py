"""`run`, `init`, `config` and `schema infer`: the commands that work on this machine.

`run` checks the configuration against the data and the model package
(`pipeline.preflight`) before anything starts, then runs every component in
this process with TFX's local runner, one progress line per component, and
ends with what the run decided: the metrics, the blessing and the push.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from components import contracts, storage
from pipeline import config as config_lib
from pipeline import logs
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.init.result import InitResult
    from pipeline.progress import NodeResult
    from pipeline.summary import RunSummary

# Classes of a label listed in init's summary before "...".
SHOWN_CLASSES = 6
INIT_LOG = "build/logs/init.log"


def register(commands: Commands) -> None:
    """Adds `run`, `init`, `config` and `schema infer` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    run = commands.add_parser(
        "run",
        help="run the whole pipeline locally, or a compiled pipeline.yaml as KFP would",
        description="Runs the pipeline with TFX's local runner. With --compiled, runs a "
        "file `compile` wrote instead, task by task, the way the KFP v2 launcher does: "
        "each task's container command with its ExecutorInput, ML Metadata in KFP's "
        "records (into metadata.sqlite_path). No containers: the commands run here.",
    )
    common.add_config_args(run, config_lib.DEFAULT_CONFIG)
    common.add_output_arg(run)
    compiled = run.add_argument_group("a compiled pipeline (--compiled)")
    compiled.add_argument(
        "--compiled", metavar="FILE", help="a PipelineSpec YAML that `compile` wrote"
    )
    compiled.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a run parameter, as in the KFP UI, e.g. --param train_steps=200 (repeatable)",
    )
    compiled.add_argument(
        "--pipeline-root", help="the run's pipeline root (default: the file's default root)"
    )
    compiled.add_argument("--run-id", help="the run's id (default: a new UUID)")
    compiled.add_argument(
        "--task-timeout",
        type=common.at_least_one,
        default=3600,
        metavar="SECONDS",
        help="stop a task that runs longer and fail the run (default: 3600)",
    )
    compiled.add_argument(
        "--fresh-python",
        action="store_true",
        help="start each task's `python -m` command in a new interpreter, as a container "
        "does (default: forks of one interpreter that has imported TensorFlow and TFX, "
        "about 6 s less per task)",
    )
    run.set_defaults(handler=_run)

    init = commands.add_parser(
        "init", help="write a config and a curated schema for a folder of CSV files"
    )
    init.add_argument("--data", required=True, metavar="DIR", help="the folder of CSV files")
    init.add_argument("--label", required=True, metavar="COLUMN", help="the column to predict")
    init.add_argument(
        "--output",
        default="pipeline.yaml",
        metavar="FILE",
        help="the config to write; schema.pbtxt goes beside it (default: pipeline.yaml)",
    )
    init.add_argument("--name", help="pipeline and model name (default: the data folder's name)")
    init.add_argument("--force", action="store_true", help="overwrite the config and the schema")
    init.set_defaults(handler=_init)

    show = commands.add_parser(
        "config",
        help="print the resolved configuration, or its JSON Schema",
        description="Print the resolved configuration (after extends, --set and path "
        "resolution), or with --schema the JSON Schema of config files, for editors "
        "(`# yaml-language-server: $schema=...`) and CI checks.",
    )
    common.add_config_args(show, config_lib.DEFAULT_CONFIG)
    show.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON Schema of config files instead (no config is read)",
    )
    show.set_defaults(handler=_show_config)

    schema = commands.add_parser("schema", help="schema tools: infer a draft from the data")
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)
    infer = schema_commands.add_parser("infer", help="infer a draft schema from the data")
    common.add_config_args(infer, config_lib.DEFAULT_CONFIG)
    infer.add_argument("--output", default="build/schema_draft.pbtxt", help="draft schema path")
    infer.set_defaults(handler=_schema_infer)


def _progress(args: argparse.Namespace, total: int) -> Callable[[NodeResult], None]:
    """A progress callback printing `[ n/total] node state seconds` as each node ends."""
    count = 0

    def report(result: NodeResult) -> None:
        nonlocal count
        count += 1
        state = {"COMPLETE": "done", "CACHED": "cached"}.get(result.state, result.state.lower())
        common.say(
            args, f"[{count:2d}/{total}] {result.node_id:<18} {state:<7} {result.seconds:7.1f}s"
        )

    return report


def _print_summary(summary: RunSummary, config: PipelineConfig) -> None:
    """Prints the eval metrics of the task, the baseline's, the blessing and the push."""
    from components.evaluator.eval_config import METRICS

    if summary.metrics:
        shown = ", ".join(
            f"{name} {summary.metrics[name]:.4f}"
            for name in METRICS[config.model.task]
            if name in summary.metrics
        )
        count = int(summary.metrics.get("example_count", 0))
        label = config.model.label.display_name
        print(f"eval metrics ({label}, {count} eval examples): {shown}")
    if summary.class_recall:
        recalls = ", ".join(f"{name} {value:.2f}" for name, value in summary.class_recall.items())
        print(f"recall by class: {recalls}")
    if summary.baseline_metrics:
        metric = config.evaluator.metric
        value = summary.baseline_metrics.get(metric, float("nan"))
        print(f"baseline (model {summary.baseline_model_id}): {metric} {value:.4f}")
    if summary.blessed is not None:
        verdict = "BLESSED" if summary.blessed else "NOT BLESSED"
        print(f"{verdict}: " + "; ".join(summary.reasons))
    pusher_cached = any(
        n.node_id == contracts.PUSHER and n.state == "CACHED" for n in summary.nodes
    )
    if summary.pushed_uri:
        when = " (by an earlier run; this one reused it from cache)" if pusher_cached else ""
        print(f"pushed: {summary.pushed_uri}{when}")
        for line in _tflite_refusals(summary.pushed_uri):
            print(f"  TFLite variant not published: {line}")
    elif summary.blessed is not None:
        print("pushed: nothing (the model was not blessed)")


def _tflite_refusals(version_dir: str) -> list[str]:
    """The TFLite variants (registry.tflite) the push refused, each with its reason."""
    from components.registry import manifest
    from components.registry.tflite import refusals

    try:
        record = manifest.read(version_dir)
    except manifest.ManifestError:
        return []  # the summary names the version; `registry verify` names what is wrong
    return refusals(record.get(contracts.TFLITE_MANIFEST_KEY))


def _summary_json(
    summary: RunSummary, config: PipelineConfig, log_file: str, seconds: float
) -> dict[str, object]:
    """`run -o json`: what the run decided, the same facts as the text summary."""
    pusher_cached = any(
        n.node_id == contracts.PUSHER and n.state == "CACHED" for n in summary.nodes
    )
    return {
        "status": "succeeded",
        "pipeline": config.run.pipeline_name,
        "task": config.model.task,
        "gated_metric": config.evaluator.metric,
        "nodes": [
            {"id": n.node_id, "state": n.state, "seconds": round(n.seconds, 3)}
            for n in summary.nodes
        ],
        "metrics": summary.metrics,
        "class_recall": summary.class_recall,
        "baseline_model_id": summary.baseline_model_id,
        "baseline_metrics": summary.baseline_metrics,
        "blessed": summary.blessed,
        "reasons": summary.reasons,
        "pushed": summary.pushed_uri,
        "tflite_refused": _tflite_refusals(summary.pushed_uri) if summary.pushed_uri else [],
        "pushed_by_earlier_run": bool(summary.pushed_uri and pusher_cached),
        "evaluation_uri": summary.evaluation_uri,
        "log_file": log_file,
        "seconds": round(seconds, 3),
    }


def _run(args: argparse.Namespace) -> int:
    from pipeline import preflight

    if args.compiled:
        return _run_compiled(args)
    stray = [
        flag
        for flag, given in (
            ("--param", args.params),
            ("--pipeline-root", args.pipeline_root),
            ("--run-id", args.run_id),
            ("--fresh-python", args.fresh_python),
        )
        if given
    ]
    if stray:
        raise common.UsageError(f"{', '.join(stray)}: only with --compiled FILE")
    config = common.load_config(args)
    preflight.check(config)
    # TFX takes seconds to import: only once the checks have passed.
    from pipeline.runners import local

    # One file per run: two runs started in the same second must not share one.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_file = f"{config.run.pipeline_root}/logs/run-{stamp}-{os.getpid()}.log"
    logs.configure(log_file, args.verbose)
    metadata = config.metadata
    store = (
        metadata.sqlite_path if metadata.kind == "sqlite" else f"{metadata.kind}:{metadata.host}"
    )
    common.say(
        args,
        f"pipeline {config.run.pipeline_name}: root {config.run.pipeline_root}, "
        f"metadata {store}, registry {config.serving_model_dir}",
    )
    started = time.monotonic()
    # With -o json, stdout holds the one JSON object: whatever a library
    # prints while the components run goes to stderr with the progress.
    quiet_stdout = (
        contextlib.redirect_stdout(sys.stderr)
        if common.wants_json(args)
        else contextlib.nullcontext()
    )
    try:
        with quiet_stdout:
            summary = local.run(config, report=_progress(args, len(contracts.NODE_IDS)))
    except local.PipelineInterrupted as stopped:
        print(
            f"interrupted at {stopped.node_id}; rerun resumes from the cache "
            f"(full log: {log_file})",
            file=sys.stderr,
        )
        if common.wants_json(args):
            common.print_json(
                {"status": "interrupted", "node": stopped.node_id, "log_file": log_file}
            )
        return 130
    except local.PipelineRunError as error:
        logging.error("run failed at %s", error.node_id, exc_info=error.__cause__)
        reason = error.reason
        if error.node_id == contracts.EXAMPLE_GEN and "not UTF-8" in reason:
            reason = preflight.find_undecodable(config.data.root) or reason
        print(f"FAILED at {error.node_id}: {reason}", file=sys.stderr)
        with quiet_stdout:
            report = _write_report(config, error.summary, log_file)
        print(f"full log: {log_file}", file=sys.stderr)
        if report:
            print(f"report: {report}", file=sys.stderr)
        if common.wants_json(args):
            common.print_json(
                {
                    "status": "failed",
                    "node": error.node_id,
                    "reason": reason,
                    "log_file": log_file,
                    "report": report,
                }
            )
        return 1
    seconds = time.monotonic() - started
    with quiet_stdout:
        report = _write_report(config, summary, log_file)
    if common.wants_json(args):
        common.print_json({**_summary_json(summary, config, log_file, seconds), "report": report})
        return 0
    _print_summary(summary, config)
    if report:
        print(f"report: {report}")
    print(f"finished in {seconds:.1f}s; full log: {log_file}")
    return 0


def _write_report(config: PipelineConfig, summary: RunSummary, log_file: str) -> str | None:
    """The run's HTML report beside its log; None (said on stderr) if it could not be written."""
    from pipeline.report import write_report

    path = f"{log_file.removesuffix('.log')}.html"
    try:
        return write_report(config, summary, path)
    except Exception as error:  # the run's own outcome matters more than its page
        logging.warning("report not written", exc_info=error)
        print(
            f"report not written ({type(error).__name__}: {error}); see {log_file}",
            file=sys.stderr,
        )
        return None


def _run_compiled(args: argparse.Namespace) -> int:
    """`run --compiled FILE`: every task of a compiled spec, as the KFP v2 launcher runs it."""
    from pathlib import Path

    from pipeline.kubeflow import local_launcher

    config = common.load_config(args)
    if config.metadata.kind != "sqlite":
        raise common.UsageError(
            f"run --compiled records into a SQLite store; metadata.kind is "
            f"{config.metadata.kind!r} (set metadata.kind=sqlite)"
        )
    spec = local_launcher.load_spec(Path(args.compiled))
    parameters = local_launcher.parse_parameters(spec, args.params)
    # The task logs stay on this machine, whatever the pipeline root is.
    root = config.run.pipeline_root
    work_dir = Path(root if storage.is_local(root) else "build")
    launcher = local_launcher.LocalLauncher(
        spec,
        Path(config.metadata.sqlite_path),
        work_dir,
        timeout_s=args.task_timeout,
        pipeline_root=args.pipeline_root,
        preload=not args.fresh_python,
    )
    tasks = spec["root"]["dag"]["tasks"]
    common.say(
        args,
        f"compiled pipeline {spec['pipelineInfo']['name']} ({args.compiled}): {len(tasks)} "
        f"tasks, root {launcher.pipeline_root}, metadata {config.metadata.sqlite_path}",
    )
    count = 0

    def report(task: local_launcher.TaskRecord) -> None:
        nonlocal count
        count += 1
        common.say(args, f"[{count:2d}/{len(tasks)}] {task.name:<18} done    {task.seconds:7.1f}s")

    started = time.monotonic()
    try:
        with launcher:
            record = launcher.run(args.run_id, parameters, report=report)
    except local_launcher.TaskFailed as failed:
        last = failed.tail.strip().splitlines()[-1:] or ["no output"]
        print(
            f"FAILED at task {failed.task} (exit {failed.returncode}): {last[0]}",
            file=sys.stderr,
        )
        print(f"task log: {failed.log}", file=sys.stderr)
        if common.wants_json(args):
            common.print_json({"status": "failed", "task": failed.task, "log": str(failed.log)})
        return 1
    pushed = [
        str(artifact.custom_properties[contracts.PUSHED_DESTINATION].string_value)
        for task in record.tasks.values()
        for artifact in task.outputs.values()
        if artifact.custom_properties[contracts.PUSHED].double_value == 1.0
    ]
    seconds = time.monotonic() - started
    if common.wants_json(args):
        common.print_json(
            {
                "status": "succeeded",
                "run_id": record.run_id,
                "pipeline": spec["pipelineInfo"]["name"],
                "pipeline_root": launcher.pipeline_root,
                "metadata": config.metadata.sqlite_path,
                "tasks": [
                    {
                        "name": t.name,
                        "execution_id": t.execution_id,
                        "seconds": round(t.seconds, 3),
                        "parameters": t.executor_input["inputs"].get("parameterValues", {}),
                        "outputs": {
                            key: {"id": a.id, "uri": a.uri} for key, a in t.outputs.items()
                        },
                    }
                    for t in record.tasks.values()
                ],
                "pushed": pushed[0] if pushed else None,
                "seconds": round(seconds, 3),
            }
        )
        return 0
    print(f"pushed: {pushed[0]}" if pushed else "pushed: nothing")
    print(
        f"run {record.run_id}: {len(record.tasks)} tasks in {seconds:.1f}s; task logs in "
        f"{work_dir / 'logs'}"
    )
    return 0


def _init_table(result: InitResult) -> list[str]:
    """One line per column: its name, its kind, and its parameters or why it is ignored."""
    rows = [
        (
            c.name,
            c.kind,
            ", ".join(f"{k}={v}" for k, v in c.params.items()) if c.params else c.note,
        )
        for c in result.columns
    ]
    name_width = max(len("column"), *(len(name) for name, _, _ in rows))
    kind_width = max(len("kind"), *(len(kind) for _, kind, _ in rows))
    lines = [f"{'column':<{name_width}}  {'kind':<{kind_width}}  parameters / reason"]
    lines += [f"{n:<{name_width}}  {k:<{kind_width}}  {detail}" for n, k, detail in rows]
    return lines


def _init(args: argparse.Namespace) -> int:
    from pipeline.init.command import run_init

    # TFDV logs through TensorFlow's logger while it computes the statistics.
    logs.configure(INIT_LOG, verbose=False)
    result = run_init(args.data, args.label, output=args.output, name=args.name, force=args.force)
    label = result.label
    classes = ", ".join(f"{name} {rows}" for name, rows in label.classes[:SHOWN_CLASSES])
    more = ", ..." if len(label.classes) > SHOWN_CLASSES else ""
    positive = (
        f"; positive class {label.positive!r} ({label.positive_reason})" if label.positive else ""
    )
    files = f"{len(result.files)} CSV file" + ("s" if len(result.files) > 1 else "")
    print(
        f"{result.rows} rows in {files} of {result.data_root}; label "
        f"{label.column!r}: {label.task}, {len(label.classes)} classes ({classes}{more}){positive}"
    )
    for line in _init_table(result):
        print(f"  {line}")
    thresholds = result.thresholds
    print(
        f"blessing: {thresholds.metric} >= {thresholds.min_value:g}, at most "
        f"{thresholds.max_drop:g} below the last blessed model"
        + (f"; metrics also by {result.slice_by}" if result.slice_by else "")
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"wrote {result.config_path}")
    print(f"wrote {result.schema_path}")
    print(f"next: python -m pipeline run --config {args.output}")
    return 0


def _show_config(args: argparse.Namespace) -> int:
    import yaml

    if args.schema:
        from pipeline import config_schema

        print(config_schema.schema_text(), end="")
        return 0
    config = common.load_config(args)
    print(yaml.safe_dump(config_lib.to_dict(config), sort_keys=False), end="")
    return 0


def _schema_infer(args: argparse.Namespace) -> int:
    from pipeline.schema_infer import infer_schema

    config = common.load_config(args)
    logs.configure(f"{config.run.pipeline_root}/logs/schema-infer.log", args.verbose)
    path = infer_schema(config, args.output)
    print(f"draft schema written to {path}")
    print(f"curate it by hand, then replace {config.data.schema_file}")
    return 0
