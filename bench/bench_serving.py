"""Serving-path latency and throughput of an exported SavedModel, in-process.

Times the model's two serving signatures and, for comparison, the bare Keras
model on inputs the transform graph already produced:

- `serving_raw`: one tensor per raw feature (the REST path);
- `serving_default`: serialized tf.Examples (the gRPC path);
- bare model: the restored Keras call on `transform_features`' output, i.e.
  the same model without the in-graph transform.

For each: batch-1 latency p50/p99 over `--calls` calls after a warmup, and
examples/second at batch `--batch` (the median of `--repeats` timed calls).
Inputs are rows of the configured data (the taxi CSV by default), typed and
filled as the `predict` client does. Calls go through the Python API of
TensorFlow, whose per-call overhead (tens of microseconds) is in every row
alike; TF Serving's own C++ path has none of it.

Usage:
    python bench/bench_serving.py [--model DIR] [--config FILE] [--calls 2000]
        [--batch 1024] [--repeats 30]

Without --model: the newest complete version in the configured registry
(run `make run` first). Prints a Markdown table and writes
bench/results/serving-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _latency_ms(call: Callable[[], Any], calls: int, warmup: int = 200) -> dict[str, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50": times[len(times) // 2],
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
    }


def _examples_per_s(call: Callable[[], Any], batch: int, repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def _inputs(config: Any, count: int) -> tuple[dict[str, Any], list[bytes]]:
    """`count` rows of the configured data: raw columns as arrays, and as tf.Examples."""
    import numpy as np

    from pipeline.serving.columns import columns_for
    from pipeline.serving.rows import read_rows, to_example, to_instance

    columns = columns_for(config)
    csv_files = sorted(Path(config.data.root).glob("*.csv"))
    if not csv_files:
        raise SystemExit(f"{config.data.root}: no CSV file to draw rows from")
    rows = read_rows(str(csv_files[0]), columns, limit=count)
    while len(rows) < count:
        rows = rows + rows[: count - len(rows)]
    instances = [to_instance(r, columns) for r in rows]
    dtypes = {"float": np.float32, "int": np.int64, "string": object}
    raw = {c.name: np.array([i[c.name] for i in instances], dtype=dtypes[c.dtype]) for c in columns}
    return raw, [to_example(r, columns) for r in rows]


def _eval_examples(model_dir: str, count: int) -> list[bytes]:
    """`count` serialized tf.Examples of the eval split the version was evaluated on."""
    import itertools

    from components import contracts
    from components.registry import manifest
    from components.split_protos import split_records

    examples_uri = manifest.read(model_dir).get("source", {}).get("examples_uri")
    if not examples_uri:
        raise SystemExit(f"{model_dir}: its manifest names no examples (source.examples_uri)")
    records = list(itertools.islice(split_records(examples_uri, contracts.EVAL_SPLIT), count))
    while len(records) < count:
        records += records[: count - len(records)]
    return records


def _bare_call(loaded: Any) -> tuple[Callable[[dict[str, Any]], Any], list[str]]:
    """The restored Keras call (training=False) and the transformed inputs it takes."""
    import tensorflow as tf

    for function in loaded.__call__.concrete_functions:
        args, _ = function.structured_input_signature
        if len(args) >= 2 and args[1] is False and isinstance(args[0], dict):
            specs: dict[str, tf.TensorSpec] = args[0]
            break
    else:
        raise SystemExit("the SavedModel has no traced Keras call with training=False")

    def call(transformed: dict[str, Any]) -> Any:
        return loaded(transformed, training=False)

    def prepare(transformed: dict[str, Any]) -> dict[str, Any]:
        return {
            name: tf.reshape(tf.cast(transformed[name], spec.dtype), [-1, *spec.shape[1:]])
            for name, spec in specs.items()
        }

    call.prepare = prepare  # type: ignore[attr-defined]
    return call, sorted(specs)


def measure(model_dir: str, config: Any, calls: int, batch: int, repeats: int) -> dict[str, Any]:
    import tensorflow as tf

    from components import contracts

    loaded = tf.saved_model.load(model_dir)
    raw_signature = loaded.signatures[contracts.SERVING_RAW]
    examples_signature = loaded.signatures[contracts.SERVING_DEFAULT]
    transform = loaded.signatures[contracts.TRANSFORM_FEATURES]
    bare, _ = _bare_call(loaded)
    raw, examples = _inputs(config, batch)
    example_key = contracts.SERVING_DEFAULT_INPUT

    def raw_batch(n: int) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v[:n]) for k, v in raw.items()}

    # transform_features parses every raw column, the label's inputs too:
    # the pipeline's own eval examples have them.
    full_examples = _eval_examples(model_dir, batch)

    def bare_inputs(n: int) -> dict[str, tf.Tensor]:
        out = transform(**{example_key: tf.constant(full_examples[:n])})
        return bare.prepare(out)  # type: ignore[attr-defined,no-any-return]

    one_raw, big_raw = raw_batch(1), raw_batch(batch)
    one_example, big_example = tf.constant(examples[:1]), tf.constant(examples)
    one_bare, big_bare = bare_inputs(1), bare_inputs(batch)
    paths = {
        "serving_raw": (
            lambda: raw_signature(**one_raw),
            lambda: raw_signature(**big_raw),
        ),
        "serving_default": (
            lambda: examples_signature(**{example_key: one_example}),
            lambda: examples_signature(**{example_key: big_example}),
        ),
        "bare Keras model (transformed inputs)": (
            lambda: bare(one_bare),
            lambda: bare(big_bare),
        ),
    }
    results = {}
    for name, (one, many) in paths.items():
        results[name] = {
            "batch1_ms": _latency_ms(one, calls),
            f"batch{batch}_examples_per_s": _examples_per_s(many, batch, repeats),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="SavedModel folder (default: the registry's newest)")
    parser.add_argument("--config", help="pipeline config (default: pipeline/configs/local.yaml)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from components import environment

    environment.prepare(quiet=True)
    import tensorflow as tf

    from components.registry.store import Registry
    from pipeline.config import load_config

    config = load_config(args.config)
    model_dir = args.model
    if model_dir is None:
        versions = Registry(config.registry.uri, config.registry.model_name).complete_versions()
        if not versions:
            raise SystemExit(f"{config.serving_model_dir}: no pushed version; run `make run` first")
        model_dir = versions[-1].path
    results = measure(model_dir, config, args.calls, args.batch, args.repeats)
    bare = results["bare Keras model (transformed inputs)"]
    print(f"model {model_dir}; TensorFlow {tf.__version__}; {os.cpu_count()} CPUs")
    print(f"| path | batch-1 p50 | batch-1 p99 | examples/s at batch {args.batch} |")
    print("|---|---:|---:|---:|")
    for name, figures in results.items():
        ms = figures["batch1_ms"]
        rate = figures[f"batch{args.batch}_examples_per_s"]
        print(f"| {name} | {ms['p50']:.3f} ms | {ms['p99']:.3f} ms | {rate:,.0f} |")
    for name in ("serving_raw", "serving_default"):
        ratio = results[name]["batch1_ms"]["p50"] / bare["batch1_ms"]["p50"]
        print(f"{name}: batch-1 p50 = {ratio:.2f}x the bare model's (goal <= 1.2x)")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("serving-%Y%m%d-%H%M%S.json")
    path.write_text(
        json.dumps(
            {
                "model": model_dir,
                "tensorflow": tf.__version__,
                "cpus": os.cpu_count(),
                "calls": args.calls,
                "batch": args.batch,
                "repeats": args.repeats,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
