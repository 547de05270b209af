"""`predict` and `loadtest`: ask a model that TF Serving serves.

Both read raw rows from a CSV file (the pipeline's own data works: columns
the model does not use are ignored), typed and filled by the configured
workload's serving columns (`pipeline.serving.columns`), and ask a model
behind TF Serving, over REST (`serving_raw`) or, with --grpc, gRPC
(`serving_default`).

Exit codes: 0 success; 1 the server failed a request (the CLI reports a
ServingError as `FAILED: ...`); 2 bad input: an endpoint, a CSV row, the
configuration (a UserError).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from components.workload import MULTICLASS
from pipeline import config as config_lib
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.serving.client import PredictClient, Prediction
    from pipeline.serving.rows import Row

DEFAULT_DURATION = 10.0


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, found {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, found {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, found {text}")
    return value


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    common.add_config_args(parser, config_lib.DEFAULT_CONFIG)
    parser.add_argument(
        "--endpoint",
        required=True,
        help="REST http://host:8501, or gRPC host:8500 (with --grpc) or grpc://host:8500",
    )
    parser.add_argument("--model", help="served model name (default: registry.model_name)")
    parser.add_argument(
        "--csv",
        required=True,
        help="CSV with a header and a column per model feature; other columns are ignored",
    )
    parser.add_argument(
        "--grpc",
        action="store_true",
        help="use TF Serving's gRPC API (serving_default) instead of REST (serving_raw)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="ask for this model version")
    which.add_argument("--label", help="ask for this version label, e.g. stable or canary")
    parser.add_argument(
        "--batch-size", type=_at_least_one, default=64, help="rows per request (default: 64)"
    )
    parser.add_argument("--limit", type=_at_least_one, help="use only the first N rows of the CSV")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        help="seconds to wait for each answer (default: 10)",
    )


def register(commands: Commands) -> None:
    """Adds `predict` and `loadtest` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    predict = commands.add_parser(
        "predict", help="score CSV rows with a model served by TF Serving"
    )
    _add_common_args(predict)
    predict.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="binary models: the probability from which a row is called positive (default: 0.5)",
    )
    predict.set_defaults(handler=_predict)

    loadtest = commands.add_parser(
        "loadtest",
        help="send concurrent requests to TF Serving; exit 1 if any fails",
    )
    _add_common_args(loadtest)
    loadtest.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=4,
        help="workers, each with one request in flight (default: 4)",
    )
    length = loadtest.add_mutually_exclusive_group()
    length.add_argument(
        "--duration",
        type=_positive,
        help=f"seconds to measure (default: {DEFAULT_DURATION:g})",
    )
    length.add_argument("--requests", type=_at_least_one, help="measure this many requests instead")
    loadtest.add_argument(
        "--warmup",
        type=_not_negative,
        default=0.0,
        help="seconds of requests before measuring, left out of the figures (default: 0)",
    )
    loadtest.set_defaults(handler=_loadtest)


def _session(args: argparse.Namespace) -> tuple[PipelineConfig, list[Row], PredictClient]:
    """The configuration, the CSV's rows (checked before any request) and the client."""
    from pipeline.serving.client import make_client
    from pipeline.serving.columns import columns_for
    from pipeline.serving.rows import read_rows

    config = common.load_config(args)
    columns = columns_for(config)
    rows = read_rows(args.csv, columns, args.limit)
    client = make_client(
        args.endpoint,
        args.model or config.registry.model_name,
        columns,
        use_grpc=args.grpc,
        version=args.version,
        label=args.label,
        timeout=args.timeout,
    )
    return config, rows, client


def _binary_table(
    rows: Sequence[Row], predictions: Sequence[Prediction], label: str, threshold: float
) -> str:
    """Prints `row probability <label>` lines (yes from `threshold` on); returns the tally."""
    print(f"{'row':>6}  {'probability':>11}  {label}")
    probabilities = [p.probability for p in predictions]
    for row, probability in zip(rows, probabilities, strict=True):
        verdict = "yes" if probability >= threshold else "no"
        print(f"{row.number:>6}  {probability:>11.6f}  {verdict}")
    positive = sum(p >= threshold for p in probabilities)
    return (
        f"{positive} called {label} (probability >= {threshold:g}), mean probability "
        f"{sum(probabilities) / len(probabilities):.4f}"
    )


def _class_table(rows: Sequence[Row], predictions: Sequence[Prediction]) -> str:
    """Prints `row class probability` lines of each row's top class; returns the class counts."""
    classes = [str(p.top_class) for p in predictions]
    width = max(len("class"), *(len(c) for c in classes))
    print(f"{'row':>6}  {'class':<{width}}  {'probability':>11}")
    for row, prediction, top in zip(rows, predictions, classes, strict=True):
        print(f"{row.number:>6}  {top:<{width}}  {prediction.probability:>11.6f}")
    counts = ", ".join(f"{c} {n}" for c, n in Counter(classes).most_common())
    return f"top class {counts}"


def _predict(args: argparse.Namespace) -> int:
    from pipeline.serving.client import predict_in_batches

    config, rows, client = _session(args)
    with client:
        predictions = predict_in_batches(client, rows, args.batch_size)
        where = f"{client.protocol} {client.target.endpoint}, {client.target.describe()}"
    if config.model.task == MULTICLASS:
        tally = _class_table(rows, predictions)
    else:
        label = config.model.label.display_name
        tally = _binary_table(rows, predictions, label, args.threshold)
    print(f"{len(rows)} rows of {args.csv} scored by {where}: {tally}")
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from pipeline.serving.loadtest import format_result, run_load_test

    _, rows, client = _session(args)
    duration = None if args.requests is not None else (args.duration or DEFAULT_DURATION)
    with client:
        result = run_load_test(
            client,
            rows,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            duration=duration,
            requests=args.requests,
            warmup=args.warmup,
        )
    print(format_result(result))
    if result.errors:
        print(f"FAILED: {result.errors} of {result.requests} requests failed", file=sys.stderr)
        return 1
    if result.requests == 0:
        print("FAILED: no request completed in the measured window", file=sys.stderr)
        return 1
    return 0
