"""Times the default local run per component, beside TFX's own taxi example.

Both pipelines run on this machine, on the same Chicago Taxi CSV (15,000
trips, from the tfx wheel), with the same number of training steps (1000,
the example's value and our default) and the same train/eval split (hash
buckets 2:1, CsvExampleGen's default). Each runs in its own subprocess with
a fresh pipeline root and metadata store, so nothing is cached.

AUC is computed the same way for both pushed models: their `serving_default`
signatures score the raw eval split, against the label "tip > 20% of fare".

Usage:
    python bench/bench_local_run.py [--workdir DIR] [--only ours|example]

Prints a Markdown table and writes bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

TRAIN_STEPS = 1000
EVAL_STEPS = 150  # the example's EvalArgs


def _eval_split_uri(store, pipeline_name: str, node_id: str) -> str:
    from components import mlmd

    execution = mlmd.latest_execution(store, pipeline_name, node_id)
    if execution is None:
        raise RuntimeError(f"no {node_id} execution in {pipeline_name}")
    examples = mlmd.output_artifacts(store, execution.id)["examples"][0]
    return os.path.join(examples.uri, "Split-eval")


def eval_auc(model_dir: str, eval_dir: str) -> tuple[float, int]:
    """AUC of a SavedModel's serving_default on raw eval tf.Examples."""
    import numpy as np
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(eval_dir, "*.gz")))
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    parsed = tf.io.parse_example(
        records,
        {
            "tips": tf.io.VarLenFeature(tf.float32),
            "fare": tf.io.VarLenFeature(tf.float32),
        },
    )
    tips = tf.sparse.to_dense(parsed["tips"]).numpy()[:, 0]
    fare = tf.sparse.to_dense(parsed["fare"]).numpy()[:, 0]
    labels = ((fare > 0) & (tips > np.float32(0.2) * fare)).astype(np.float32)
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    scores = []
    for start in range(0, len(records), 1000):
        out = serve(examples=tf.constant(records[start : start + 1000]))
        scores.append(next(iter(out.values())).numpy().reshape(-1))
    auc = tf.keras.metrics.AUC(num_thresholds=1000)
    auc.update_state(labels, np.concatenate(scores))
    return float(auc.result().numpy()), len(records)


def run_ours(workdir: Path) -> dict:
    """Our default run, with the example's split and eval steps."""
    from workspace import run_in

    started = time.monotonic()
    config, summary, store = run_in(
        workdir,
        "data.train_buckets=2",
        "data.eval_buckets=1",
        f"trainer.train_steps={TRAIN_STEPS}",
        f"trainer.eval_steps={EVAL_STEPS}",
    )
    wall = time.monotonic() - started
    model_dir = summary.pushed_uri
    if not model_dir:
        raise RuntimeError(f"our run pushed nothing: {summary.reasons}")
    auc, count = eval_auc(
        model_dir, _eval_split_uri(store, config.run.pipeline_name, "example_gen")
    )
    return {
        "name": "ours (python -m pipeline run defaults)",
        "wall_s": wall,
        "components": {n.node_id: n.seconds for n in summary.nodes},
        "auc": auc,
        "eval_examples": count,
        "batch_size": config.trainer.batch_size,
        "beam_args": list(config.beam.args),
    }


def run_example(workdir: Path) -> dict:
    """tfx.examples.chicago_taxi_pipeline.taxi_pipeline_native_keras, as shipped."""
    import tfx
    from ml_metadata import metadata_store
    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as example
    from tfx.orchestration import metadata
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from pipeline.config import load_config
    from pipeline.progress import ProgressTracker

    module_file = (
        Path(tfx.__file__).parent / "examples/chicago_taxi_pipeline/taxi_utils_native_keras.py"
    )
    name = "chicago_taxi_native_keras"
    metadata_path = str(workdir / "metadata.sqlite")
    pipeline = example._create_pipeline(
        pipeline_name=name,
        pipeline_root=str(workdir / "pipeline_root"),
        data_root=load_config().data.root,
        module_file=str(module_file),
        serving_model_dir=str(workdir / "serving_model"),
        metadata_path=metadata_path,
        beam_pipeline_args=example._beam_pipeline_args,
    )
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    tracker = ProgressTracker(store, name, lambda _: None)
    started = time.monotonic()
    with tracker.attached():
        BeamDagRunner().run(pipeline)  # the example's own runner (its __main__)
    wall = time.monotonic() - started
    pushed = sorted(glob.glob(str(workdir / "serving_model" / "*")))
    if not pushed:
        raise RuntimeError("the example pushed nothing")
    auc, count = eval_auc(pushed[-1], _eval_split_uri(store, name, "CsvExampleGen"))
    return {
        "name": "TFX taxi_pipeline_native_keras",
        "wall_s": wall,
        "components": {n.node_id: n.seconds for n in tracker.results},
        "auc": auc,
        "eval_examples": count,
        "batch_size": 40,
        "beam_args": list(example._beam_pipeline_args),
    }


def _child(which: str, workdir: Path) -> dict:
    """Runs one pipeline in a subprocess; returns its JSON result."""
    out = workdir / f"{which}.json"
    cmd = [sys.executable, __file__, "--only", which, "--workdir", str(workdir), "--json", str(out)]
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    result = json.loads(out.read_text())
    result["process_s"] = time.monotonic() - started
    return result


def _table(results: list[dict]) -> str:
    nodes: list[str] = []
    for r in results:
        nodes += [n for n in r["components"] if n not in nodes]
    lines = [
        "| component | " + " | ".join(r["name"] for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for node in nodes:
        cells = [
            f"{r['components'][node]:.1f} s" if node in r["components"] else "-" for r in results
        ]
        lines.append(f"| {node} | " + " | ".join(cells) + " |")
    for label, key, fmt in (
        ("pipeline wall time", "wall_s", "{:.1f} s"),
        ("process wall time (incl. imports)", "process_s", "{:.1f} s"),
        ("peak RSS, main process", "max_rss_mb", "{:.0f} MiB"),
        ("eval AUC (same eval split)", "auc", "{:.4f}"),
        ("eval examples", "eval_examples", "{}"),
        ("batch size", "batch_size", "{}"),
    ):
        lines.append(f"| **{label}** | " + " | ".join(fmt.format(r[key]) for r in results) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where pipeline roots go (default: a temp dir)")
    parser.add_argument("--only", choices=("ours", "example"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-"))
    if args.only:
        from components import environment
        from pipeline.logs import configure, quiet_warnings

        environment.prepare(quiet=True)
        quiet_warnings()
        run_dir = workdir / args.only
        run_dir.mkdir(parents=True, exist_ok=True)
        configure(str(run_dir / "run.log"), verbose=False)
        result = run_ours(run_dir) if args.only == "ours" else run_example(run_dir)
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.json).write_text(json.dumps(result, indent=2))
        return 0

    results = [_child("ours", workdir), _child("example", workdir)]
    record = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}, {os.uname().sysname}",
        "train_steps": TRAIN_STEPS,
        "eval_steps": EVAL_STEPS,
        "results": results,
    }
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(record, indent=2))
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
