"""`skew`: served requests against the training data of the served version.

Reads logged REST predict bodies (the TLS front's sampled request log, or
any file of such bodies, one a line), and compares them with TFDV against the
training statistics and the curated schema of the registry version that
serves them (`pipeline.serving.skew`).

Exit codes: 0 every feature within its threshold and no schema anomaly; 1
a feature over its threshold or a schema anomaly, each named (`FAILED:
...`); 2 bad input: the requests file (named by line), the configuration,
the version or label.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from components.contracts import TRAIN_SPLIT
from pipeline import config as config_lib
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.serving.skew import Requests, SkewReport, TrainingData


def register(commands: Commands) -> None:
    """Adds `skew` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    skew = commands.add_parser(
        "skew",
        help="served requests against the served version's training data (TFDV); exit 1 on drift",
        description="Computes TFDV statistics of REST predict bodies (JSON lines, such as the "
        "TLS front's sampled request log), validates them against the curated schema of the "
        "run that trained the served version, and compares them with that run's training "
        "statistics: L-infinity distance for categorical features, Jensen-Shannon divergence "
        "for numeric ones, thresholds from the config's skew section. Prints a table per "
        "feature; exits 1 naming each feature over its threshold and each schema anomaly.",
        epilog="examples:\n"
        "  %(prog)s --requests predict-requests.jsonl\n"
        "  %(prog)s --requests bodies.jsonl --label canary -o json\n"
        "  %(prog)s --requests bodies.jsonl --set skew.features.fare=0.3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_config_args(skew, config_lib.DEFAULT_CONFIG)
    skew.add_argument(
        "--requests",
        required=True,
        metavar="FILE",
        help='JSON lines: REST predict bodies ({"instances": [...]}) or the front\'s log records',
    )
    which = skew.add_mutually_exclusive_group()
    which.add_argument(
        "--version", type=common.at_least_one, help="compare with this registry version"
    )
    which.add_argument(
        "--label", help="compare with the version this label names (default: stable, else newest)"
    )
    common.add_output_arg(skew)
    skew.set_defaults(handler=_skew)


def _json(
    model: str,
    version: int,
    chosen: str,
    requests: Requests,
    training: TrainingData,
    report: SkewReport,
) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "chosen_by": chosen,
        "run": training.run_id,
        "training_statistics": training.statistics_uri,
        "training_examples": training.examples,
        "schema": training.schema_uri,
        "requests": {
            "file": requests.path,
            "lines": requests.lines,
            "bodies": requests.bodies,
            "instances": len(requests.instances),
            "skipped": dict(requests.skipped),
        },
        "features": [
            {
                "feature": f.feature,
                "kind": f.kind,
                "measure": f.measure,
                "value": f.value,
                "threshold": f.threshold,
                "drifted": f.drifted,
            }
            for f in report.features
        ],
        "schema_anomalies": [
            {"feature": a.feature, "anomaly": a.anomaly, "description": a.description}
            for a in report.anomalies
        ],
        "drifted": [f.feature for f in report.drifted],
    }


def _skew(args: argparse.Namespace) -> int:
    from components.workload import schema_dtypes, serving_columns
    from pipeline.cli.registry import registry_of
    from pipeline.lineage.store import open_lineage
    from pipeline.serving import skew

    config = common.load_config(args)
    registry = registry_of(config)
    version, chosen = skew.served_version(registry, args.version, args.label)
    where = f"{config.registry.model_name} version {version} ({chosen})"
    lineage = open_lineage(config.metadata)
    training = skew.training_data(lineage.graph, registry.manifest(version), where)
    columns = serving_columns(config.model, schema_dtypes(training.schema))
    requests = skew.read_requests(args.requests, columns)
    common.say(
        args,
        f"{where}, run {training.run_id}: training statistics {training.statistics_uri} "
        f"({TRAIN_SPLIT} split, {training.examples} examples), schema "
        f"{training.schema_uri}",
    )
    common.say(args, requests.describe())
    report = skew.compare(requests, columns, training, config.skew)
    if common.wants_json(args):
        common.print_json(
            _json(config.registry.model_name, version, chosen, requests, training, report)
        )
    else:
        print(skew.table(report))
        for anomaly in report.anomalies:
            print(f"schema anomaly: {anomaly.feature}: {anomaly.description}")
    if report.failed:
        print(f"FAILED: {skew.failure(report)}", file=sys.stderr)
        return 1
    common.say(
        args,
        f"no drift: {len(report.features)} features within their thresholds, no schema anomaly",
    )
    return 0
