"""Times the default local run per component, beside TFX's own taxi example.

Both pipelines run on this machine, on the same Chicago Taxi CSV (15,000
trips, from the tfx wheel, or that file repeated `--scale` times), with the
same number of training steps (1000, the example's value and our default)
and the same train/eval split (hash buckets 2:1, CsvExampleGen's default).
Each runs in its own subprocess with a fresh pipeline root and metadata
store, so nothing is cached. While it runs, this process samples the
resident memory of that subprocess and every process it starts (Beam's
multi-processing workers included) every 0.2 s: "peak RSS, all processes"
is the largest sum seen.

AUC is computed the same way for both pushed models, in a third process
after the run: their `serving_default` signatures score the raw eval split,
against the label "tip > 20% of fare".

Usage:
    python bench/bench_local_run.py [--workdir DIR] [--scale 1,10,100] [--only ours|example]

Prints a Markdown table per scale and writes bench/results/<time>.json.
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
import threading
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


def scaled_data(workdir: Path, scale: int) -> str:
    """A data folder holding the taxi CSV's rows `scale` times (the wheel's own at 1)."""
    from pipeline.config import load_config

    source = Path(load_config().data.root) / "data.csv"
    if scale == 1:
        return str(source.parent)
    folder = workdir / f"data-{scale}x"
    target = folder / "data.csv"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        header, *rows = source.read_text().splitlines(keepends=True)
        body = "".join(rows)
        with open(target, "w") as out:
            out.write(header)
            for _ in range(scale):
                out.write(body)
    return str(folder)


def run_ours(workdir: Path, data_root: str) -> dict:
    """Our default run, with the example's split and eval steps."""
    from workspace import run_in

    # Imported before the clock starts, as the example's modules are in
    # run_example: both clocks time building and running the pipeline, not
    # importing TensorFlow and TFX (the process wall time includes both).
    import pipeline.config
    import pipeline.runners.local  # noqa: F401

    started_at, started = time.time(), time.monotonic()
    config, summary, store = run_in(
        workdir,
        f"data.root={data_root}",
        "data.train_buckets=2",
        "data.eval_buckets=1",
        f"trainer.train_steps={TRAIN_STEPS}",
        f"trainer.eval_steps={EVAL_STEPS}",
    )
    wall = time.monotonic() - started
    model_dir = summary.pushed_uri
    if not model_dir:
        raise RuntimeError(f"our run pushed nothing: {summary.reasons}")
    return {
        "name": "ours (python -m pipeline run defaults)",
        "started_at": started_at,
        "wall_s": wall,
        "components": {n.node_id: n.seconds for n in summary.nodes},
        "model_dir": model_dir,
        "eval_dir": _eval_split_uri(store, config.run.pipeline_name, "example_gen"),
        "batch_size": config.trainer.batch_size,
        "beam_args": list(config.beam.args),
    }


def run_example(workdir: Path, data_root: str) -> dict:
    """tfx.examples.chicago_taxi_pipeline.taxi_pipeline_native_keras, as shipped."""
    import tfx
    from ml_metadata import metadata_store
    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as example
    from tfx.orchestration import metadata
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from pipeline.progress import ProgressTracker

    module_file = (
        Path(tfx.__file__).parent / "examples/chicago_taxi_pipeline/taxi_utils_native_keras.py"
    )
    name = "chicago_taxi_native_keras"
    metadata_path = str(workdir / "metadata.sqlite")
    # The clock starts before the pipeline is built, as ours builds its own
    # inside `local.run`.
    started_at, started = time.time(), time.monotonic()
    pipeline = example._create_pipeline(
        pipeline_name=name,
        pipeline_root=str(workdir / "pipeline_root"),
        data_root=data_root,
        module_file=str(module_file),
        serving_model_dir=str(workdir / "serving_model"),
        metadata_path=metadata_path,
        beam_pipeline_args=example._beam_pipeline_args,
    )
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    tracker = ProgressTracker(store, name, lambda _: None)
    with tracker.attached():
        BeamDagRunner().run(pipeline)  # the example's own runner (its __main__)
    wall = time.monotonic() - started
    pushed = sorted(glob.glob(str(workdir / "serving_model" / "*")))
    if not pushed:
        raise RuntimeError("the example pushed nothing")
    return {
        "name": "TFX taxi_pipeline_native_keras",
        "started_at": started_at,
        "wall_s": wall,
        "components": {n.node_id: n.seconds for n in tracker.results},
        "model_dir": pushed[-1],
        "eval_dir": _eval_split_uri(store, name, "CsvExampleGen"),
        "batch_size": 40,
        "beam_args": list(example._beam_pipeline_args),
    }


def _tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, from /proc, in MiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone between listdir and open
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: the parent pid
        rss[pid] = int(fields[21])  # resident pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssSampler(threading.Thread):
    """Keeps the largest process-tree RSS of a running subprocess."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self.samples: list[tuple[float, float]] = []  # (epoch seconds, MiB)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            mb = _tree_rss_mb(self.pid)
            self.samples.append((time.time(), mb))
            self.peak_mb = max(self.peak_mb, mb)


def component_peaks(started_at: float, components: dict[str, float], samples) -> dict[str, float]:
    """The largest process-tree RSS while each component ran, in MiB.

    Components run one after another from `started_at`; each one's window
    is its measured seconds, laid end to end (the few milliseconds the
    runner spends between components fall into the next one).
    """
    peaks, start = {}, started_at
    for node, seconds in components.items():
        inside = [mb for t, mb in samples if start <= t < start + seconds]
        if inside:  # a component shorter than one sample interval has none
            peaks[node] = max(inside)
        start += seconds
    return peaks


def _child(which: str, workdir: Path, data_root: str) -> dict:
    """Runs one pipeline in a subprocess, then its AUC in another; returns the result."""
    out = workdir / f"{which}.json"
    cmd = [sys.executable, __file__, "--only", which, "--workdir", str(workdir), "--json", str(out)]
    started = time.monotonic()
    process = subprocess.Popen([*cmd, "--data-root", data_root])
    sampler = _RssSampler(process.pid)
    sampler.start()
    if process.wait() != 0:
        raise RuntimeError(f"{which} failed (exit {process.returncode}); see {workdir / which}")
    sampler.done.set()
    result = json.loads(out.read_text())
    result["process_s"] = time.monotonic() - started
    result["tree_rss_mb"] = sampler.peak_mb
    result["component_rss_mb"] = component_peaks(
        result["started_at"], result["components"], sampler.samples
    )
    auc_out = workdir / f"{which}-auc.json"
    auc_cmd = [sys.executable, __file__, "--auc", result["model_dir"], result["eval_dir"]]
    subprocess.run([*auc_cmd, "--json", str(auc_out)], check=True)
    result.update(json.loads(auc_out.read_text()))
    return result


# The example's node ids, by the row of ours that does the same job.
SAME_JOB = {
    "CsvExampleGen": "example_gen",
    "StatisticsGen": "statistics_gen",
    "SchemaGen": "schema_importer",
    "ExampleValidator": "example_validator",
    "Transform": "transform",
    "Trainer": "trainer",
    "latest_blessed_model_resolver": "baseline_lookup",
    "Evaluator": "evaluator",
    "Pusher": "pusher",
}


def _cell(result: dict, row: str) -> str:
    nodes = [n for n in result["components"] if SAME_JOB.get(n, n) == row]
    if not nodes:
        return "-"
    seconds = f"{result['components'][nodes[0]]:.1f} s"
    rss = result["component_rss_mb"].get(nodes[0])
    return seconds if not rss else f"{seconds}, {rss:.0f} MiB"


def _report(record: dict) -> str:
    """The Markdown tables of a results record, one per scale."""
    parts = []
    for scale, results in record["scales"].items():
        ratio = results[0]["wall_s"] / results[1]["wall_s"]
        rows = 15000 * int(scale)
        parts.append(f"### {scale}x ({rows:,} rows): ours / example = {ratio:.2f}\n")
        parts.append(_table(results) + "\n")
    return "\n".join(parts)


def _table(results: list[dict]) -> str:
    nodes: list[str] = []
    for r in results:
        nodes += [SAME_JOB.get(n, n) for n in r["components"] if SAME_JOB.get(n, n) not in nodes]
    lines = [
        "| component (time, peak RSS of all processes) | "
        + " | ".join(r["name"] for r in results)
        + " |",
        "|---|" + "---:|" * len(results),
    ]
    for node in nodes:
        cells = [_cell(r, node) for r in results]
        lines.append(f"| {node} | " + " | ".join(cells) + " |")
    for label, key, fmt in (
        ("pipeline wall time", "wall_s", "{:.1f} s"),
        ("process wall time (incl. imports)", "process_s", "{:.1f} s"),
        ("peak RSS, main process", "max_rss_mb", "{:.0f} MiB"),
        ("peak RSS, all processes", "tree_rss_mb", "{:.0f} MiB"),
        ("eval AUC (same eval split)", "auc", "{:.4f}"),
        ("eval examples", "eval_examples", "{}"),
        ("batch size", "batch_size", "{}"),
    ):
        lines.append(f"| **{label}** | " + " | ".join(fmt.format(r[key]) for r in results) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where pipeline roots go (default: a temp dir)")
    parser.add_argument(
        "--scale",
        default="1",
        help="comma-separated data sizes, in copies of the 15,000-row CSV (default 1)",
    )
    parser.add_argument("--only", choices=("ours", "example"), help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    parser.add_argument("--auc", nargs=2, metavar=("MODEL", "EVAL"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report", metavar="JSON", help="print the tables of a bench/results file and stop"
    )
    args = parser.parse_args()

    if args.report:
        print(_report(json.loads(Path(args.report).read_text())))
        return 0

    if args.auc:
        auc, count = eval_auc(*args.auc)
        Path(args.json).write_text(json.dumps({"auc": auc, "eval_examples": count}))
        return 0
    try:
        scales = [int(s) for s in args.scale.split(",")]
    except ValueError:
        parser.error(f"--scale takes whole numbers separated by commas, got {args.scale!r}")
    if any(s < 1 for s in scales):
        parser.error(f"--scale values must be 1 or more, got {args.scale!r}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-"))
    if args.only:
        from components import environment
        from pipeline.logs import configure, quiet_warnings

        environment.prepare(quiet=True)
        quiet_warnings()
        run_dir = workdir / args.only
        run_dir.mkdir(parents=True, exist_ok=True)
        configure(str(run_dir / "run.log"), verbose=False)
        run = run_ours if args.only == "ours" else run_example
        result = run(run_dir, args.data_root)
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.json).write_text(json.dumps(result, indent=2))
        return 0

    record = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}, {os.uname().sysname}",
        "train_steps": TRAIN_STEPS,
        "eval_steps": EVAL_STEPS,
        "scales": {},
    }
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    for scale in scales:
        scale_dir = workdir / f"{scale}x"
        data_root = scaled_data(workdir, scale)
        results = [_child(w, scale_dir, data_root) for w in ("ours", "example")]
        record["scales"][str(scale)] = results
        out.write_text(json.dumps(record, indent=2))  # kept as each scale finishes
        print(_report({"scales": {str(scale): results}}), flush=True)
    print(f"raw results: {out} (print its tables again with --report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
