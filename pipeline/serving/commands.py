"""The `predict` and `loadtest` subcommands of `python -m pipeline`.

Both read raw rows from a CSV file (the pipeline's own data works: columns
the model does not use are ignored) and ask a model behind TF Serving, over
REST (`serving_raw`) or, with --grpc, gRPC (`serving_default`).

Exit codes: 0 success; 1 the server failed a request (the CLI's `main`
reports a ServingError as `FAILED: ...`); 2 bad input (a ValueError).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.serving.client import PredictClient

DEFAULT_MODEL = "taxi"
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
    parser.add_argument(
        "--endpoint",
        required=True,
        help="REST http://host:8501, or gRPC host:8500 (with --grpc) or grpc://host:8500",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"served model name (default: {DEFAULT_MODEL})"
    )
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


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `predict` and `loadtest` to the CLI's subcommands.

    Args:
        commands: What `ArgumentParser.add_subparsers` returned; each command
            sets `handler` to a function of the parsed arguments that returns
            the exit code.
    """
    predict = commands.add_parser(
        "predict", help="score CSV rows with a model served by TF Serving"
    )
    _add_common_args(predict)
    predict.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability from which a row is called a big tipper (default: 0.5)",
    )
    predict.set_defaults(handler=_predict)

    loadtest = commands.add_parser(
        "loadtest",
        help="send concurrent predict requests to TF Serving; exit 1 if any fails",
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


def _client(args: argparse.Namespace) -> PredictClient:
    from pipeline.serving.client import make_client

    return make_client(
        args.endpoint,
        args.model,
        use_grpc=args.grpc,
        version=args.version,
        label=args.label,
        timeout=args.timeout,
    )


def _predict(args: argparse.Namespace) -> int:
    from pipeline.serving.client import predict_in_batches
    from pipeline.serving.rows import read_rows

    rows = read_rows(args.csv, args.limit)
    with _client(args) as client:
        probabilities = predict_in_batches(client, rows, args.batch_size)
        where = f"{client.protocol} {client.target.endpoint}, {client.target.describe()}"
    print(f"{'row':>6}  {'probability':>11}  big_tipper")
    for row, probability in zip(rows, probabilities, strict=True):
        verdict = "yes" if probability >= args.threshold else "no"
        print(f"{row.number:>6}  {probability:>11.6f}  {verdict}")
    big = sum(p >= args.threshold for p in probabilities)
    print(
        f"{len(rows)} rows of {args.csv} scored by {where}: {big} big tippers at "
        f"probability >= {args.threshold:g}, mean probability "
        f"{sum(probabilities) / len(probabilities):.4f}"
    )
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from pipeline.serving.loadtest import format_result, run_load_test
    from pipeline.serving.rows import read_rows

    rows = read_rows(args.csv, args.limit)
    duration = None if args.requests is not None else (args.duration or DEFAULT_DURATION)
    with _client(args) as client:
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
