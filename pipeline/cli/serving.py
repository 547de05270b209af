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
import csv
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from components.workload import MULTICLASS
from pipeline import config as config_lib
from pipeline.cli import common

if TYPE_CHECKING:
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig
    from pipeline.serving.client import PredictClient, Prediction
    from pipeline.serving.loadtest import LoadTestResult
    from pipeline.serving.rows import Row
    from pipeline.serving.security import Credentials

DEFAULT_DURATION = 10.0
CSV = "csv"


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


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    """The config, the server and the model name: what every serving command asks."""
    common.add_config_args(parser, config_lib.DEFAULT_CONFIG)
    parser.add_argument(
        "--endpoint",
        required=True,
        help="REST http(s)://host:8501, or gRPC host:8500 (with --grpc), grpc://host:8500 "
        "or, with TLS, grpcs://host:443",
    )
    parser.add_argument("--model", help="served model name (default: registry.model_name)")


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    _add_server_args(parser)
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
        "--batch-size", type=common.at_least_one, default=64, help="rows per request (default: 64)"
    )
    parser.add_argument(
        "--limit", type=common.at_least_one, help="use only the first N rows of the CSV"
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        help="seconds to wait for each answer (default: 10)",
    )
    add_security_args(parser)


def add_security_args(parser: argparse.ArgumentParser) -> None:
    """TLS and the API key, for a server behind the TLS front (docs/serving.md)."""
    group = parser.add_argument_group(
        "TLS front", "for TF Serving behind kubernetes/serving/components/front"
    )
    group.add_argument(
        "--ca-cert",
        metavar="PEM",
        help="CA bundle that signed the front's certificate (default: the system's roots); "
        "with --grpc it turns TLS on, as a grpcs:// endpoint does",
    )
    group.add_argument("--client-cert", metavar="PEM", help="client certificate (mutual TLS)")
    group.add_argument("--client-key", metavar="PEM", help="its private key")
    group.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key as <key id>:<key> (never on the "
        "command line, where ps shows it)",
    )


def credentials_of(args: argparse.Namespace) -> Credentials:
    from pipeline.serving.security import Credentials

    return Credentials.from_options(
        args.ca_cert, args.client_cert, args.client_key, args.api_key_env
    )


def register(commands: Commands) -> None:
    """Adds `predict`, `loadtest` and `status` to the CLI.

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
    common.add_output_arg(predict, CSV)
    predict.set_defaults(handler=_predict)

    loadtest = commands.add_parser(
        "loadtest",
        help="send concurrent requests to TF Serving; exit 1 if any fails",
    )
    _add_common_args(loadtest)
    loadtest.add_argument(
        "--concurrency",
        type=common.at_least_one,
        default=4,
        help="workers, each with one request in flight (default: 4)",
    )
    length = loadtest.add_mutually_exclusive_group()
    length.add_argument(
        "--duration",
        type=_positive,
        help=f"seconds to measure (default: {DEFAULT_DURATION:g})",
    )
    length.add_argument(
        "--requests", type=common.at_least_one, help="measure this many requests instead"
    )
    loadtest.add_argument(
        "--warmup",
        type=_not_negative,
        default=0.0,
        help="seconds of requests before measuring, left out of the figures (default: 0)",
    )
    common.add_output_arg(loadtest)
    loadtest.set_defaults(handler=_loadtest)

    status = commands.add_parser(
        "status",
        help="whether TF Serving loaded a version; --wait until it is AVAILABLE",
        description="Reads TF Serving's model status (REST GET /v1/models/<model>"
        "[/versions/<n>], or gRPC ModelService/GetModelStatus with --grpc) for one version: "
        "--version N, --label L (looked up in the registry, since the status API knows no "
        "labels), or by default the registry's newest complete version, the one the "
        "pipeline pushed last. Exit 0 when it is AVAILABLE; 1 when it is not, when it "
        "failed to load (with the server's own message) or was unloaded, or when --wait "
        "timed out.",
        epilog="examples:\n"
        "  %(prog)s --endpoint http://localhost:8501 --wait --timeout 300\n"
        "  %(prog)s --endpoint localhost:8500 --grpc --label canary -o json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_server_args(status)
    status.add_argument("--grpc", action="store_true", help="use TF Serving's gRPC API")
    which = status.add_mutually_exclusive_group()
    which.add_argument("--version", type=common.at_least_one, help="this model version")
    which.add_argument(
        "--label", help="the version this registry label names, e.g. stable or canary"
    )
    status.add_argument(
        "--wait",
        action="store_true",
        help="poll until the version is AVAILABLE, failed or unloaded (or --timeout passes)",
    )
    status.add_argument(
        "--timeout",
        type=_positive,
        default=300.0,
        help="seconds --wait waits in all (default: 300)",
    )
    status.add_argument(
        "--interval",
        type=_positive,
        default=2.0,
        help="seconds between polls with --wait (default: 2)",
    )
    add_security_args(status)
    common.add_output_arg(status)
    status.set_defaults(handler=_status)


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
        credentials=credentials_of(args),
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


def _scored(
    rows: Sequence[Row], predictions: Sequence[Prediction], threshold: float
) -> list[dict[str, Any]]:
    """Each row's answer: its number in the CSV, the probabilities, the predicted value."""
    scored = []
    for row, prediction in zip(rows, predictions, strict=True):
        if prediction.classes:
            entry = {
                "row": row.number,
                "predicted": prediction.top_class,
                "probability": prediction.probability,
                "probabilities": dict(
                    zip(prediction.classes, prediction.probabilities, strict=True)
                ),
            }
        else:
            entry = {
                "row": row.number,
                "predicted": prediction.probability >= threshold,
                "probability": prediction.probability,
            }
        scored.append(entry)
    return scored


def _write_csv(scored: list[dict[str, Any]]) -> None:
    """`predict -o csv`: row, predicted, probability, then one column per class."""
    classes = list(scored[0].get("probabilities", {})) if scored else []
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["row", "predicted", "probability", *classes])
    for entry in scored:
        predicted = entry["predicted"]
        writer.writerow(
            [
                entry["row"],
                int(predicted) if isinstance(predicted, bool) else predicted,
                f"{entry['probability']:.6f}",
                *(f"{entry['probabilities'][c]:.6f}" for c in classes),
            ]
        )


def _predict(args: argparse.Namespace) -> int:
    from pipeline.serving.client import predict_in_batches

    config, rows, client = _session(args)
    with client:
        predictions = predict_in_batches(client, rows, args.batch_size)
        where = f"{client.protocol} {client.target.endpoint}, {client.target.describe()}"
    if args.output_format != common.TEXT:
        scored = _scored(rows, predictions, args.threshold)
        if args.output_format == CSV:
            _write_csv(scored)
            return 0
        common.print_json(
            {
                "protocol": client.protocol,
                "endpoint": client.target.endpoint,
                "model": client.target.describe(),
                "task": config.model.task,
                "threshold": None if config.model.task == MULTICLASS else args.threshold,
                "csv": args.csv,
                "rows": scored,
            }
        )
        return 0
    if config.model.task == MULTICLASS:
        tally = _class_table(rows, predictions)
    else:
        label = config.model.label.display_name
        tally = _binary_table(rows, predictions, label, args.threshold)
    print(f"{len(rows)} rows of {args.csv} scored by {where}: {tally}")
    return 0


def _load_test_json(result: LoadTestResult) -> dict[str, Any]:
    """`loadtest -o json`: the settings and the figures of the measured window."""
    return {
        "protocol": result.protocol,
        "endpoint": result.endpoint,
        "model": result.target,
        "concurrency": result.concurrency,
        "batch_size": result.batch_size,
        "seconds": result.seconds,
        "warmup_seconds": result.warmup_seconds,
        "requests": result.requests,
        "errors": result.errors,
        "first_error": result.first_error,
        "qps": result.qps,
        "rows_per_second": result.rows_per_second,
        "latency_ms": {
            "p50": result.percentile(50),
            "p95": result.percentile(95),
            "p99": result.percentile(99),
            "max": result.percentile(100),
        },
    }


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
    if common.wants_json(args):
        common.print_json(_load_test_json(result))
    else:
        print(format_result(result))
    if result.errors:
        print(f"FAILED: {result.errors} of {result.requests} requests failed", file=sys.stderr)
        return 1
    if result.requests == 0:
        print("FAILED: no request completed in the measured window", file=sys.stderr)
        return 1
    return 0


def _status_target(args: argparse.Namespace, config: PipelineConfig) -> tuple[int, str]:
    """(version, how it was chosen): --version, or the registry's label or newest version."""
    if args.version is not None:
        return args.version, "--version"
    if args.model and args.model != config.registry.model_name:
        raise common.UsageError(
            f"--model {args.model}: the registry names versions of "
            f"{config.registry.model_name!r} (registry.model_name); give --version, or set "
            f"registry.model_name={args.model}"
        )
    from components.registry.store import Registry

    registry = Registry(config.registry.uri, config.registry.model_name)
    ref = args.label or "latest"
    version = registry.resolve(ref)
    how = f"label {args.label!r}" if args.label else "the registry's newest version"
    return version.number, f"{how} in {registry.model_dir}"


def _status(args: argparse.Namespace) -> int:
    from pipeline.serving import status as status_lib

    config = common.load_config(args)
    model = args.model or config.registry.model_name
    version, chosen = _status_target(args, config)
    use_grpc = args.grpc or args.endpoint.startswith(("grpc://", "grpcs://"))
    call = status_lib.grpc_status if use_grpc else status_lib.rest_status
    timeout = min(args.timeout, 10.0)
    credentials = credentials_of(args)

    def fetch(number: int | None) -> list[status_lib.VersionStatus]:
        return call(args.endpoint, model, number, timeout, credentials)

    common.say(args, f"{model} version {version} ({chosen}) at {args.endpoint}")
    if args.wait:
        outcome = status_lib.wait_until_settled(
            fetch,
            model,
            version,
            args.timeout,
            args.interval,
            on_change=lambda message, waited: common.say(
                args, f"  {waited:6.1f}s  {message}, waiting"
            ),
        )
    else:
        outcome, _ = status_lib.check(fetch, model, version)
    if common.wants_json(args):
        common.print_json(
            {
                "model": model,
                "version": version,
                "available": outcome.ok,
                "message": outcome.message,
                "waited_s": round(outcome.waited_s, 3),
                "versions": [
                    {
                        "version": s.version,
                        "state": s.state,
                        "error_code": s.error_code,
                        "error_message": s.error_message,
                    }
                    for s in outcome.statuses
                ],
            }
        )
    else:
        for entry in outcome.statuses:
            print(f"  version {entry.version:>4}  {entry.describe()}")
    if outcome.ok:
        common.say(args, outcome.message)
        return 0
    print(f"FAILED: {outcome.message}", file=sys.stderr)
    return 1
