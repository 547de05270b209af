"""Trainer throughput (examples/second) per device, precision, XLA and worker count.

Prepares the Chicago Taxi data once (15,000 trips from the tfx wheel) by
running the local pipeline with a 10-step Trainer, then times the project's
`run_fn` on those examples (`--examples`: raw ones through the transform
graph, the default, or the ones Transform wrote out), in a fresh subprocess
per measurement:

- one process (the device TensorFlow finds: CPU, or one GPU), with mixed
  precision off/on and XLA off/on;
- with `--workers N` also N local worker processes (MultiWorkerMirroredStrategy).

Throughput is steady state: each setting trains SHORT and LONG steps, and
examples/second = (LONG - SHORT) x global batch / (time LONG - time SHORT),
which cancels start-up, tracing and export.

Usage:
    python bench/bench_trainer.py [--workdir DIR] [--batch 128] [--workers 2]
        [--short 200] [--long 5200] [--long-multi 1200] [--examples raw|transformed]

Prints a Markdown table and writes bench/results/trainer-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if TYPE_CHECKING:
    from components.training.settings import TrainerSettings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout


def prepare(workdir: Path, examples_kind: str) -> dict:
    """Runs the pipeline through Transform; returns FnArgs fields for run_fn.

    With `examples_kind` raw, training reads ExampleGen's examples through the
    transform graph; with transformed, the examples Transform wrote out.
    """
    from workspace import run_in

    from components import mlmd
    from components.training.settings import TRANSFORMED
    from pipeline import definition

    _, _, store = run_in(
        workdir,
        "trainer.train_steps=10",
        "trainer.eval_steps=1",
        "evaluator.min_value=0",
        f"trainer.examples={examples_kind}",
    )
    execution = mlmd.latest_execution(store, "taxi", definition.TRANSFORM)
    assert execution is not None
    outputs = mlmd.output_artifacts(store, execution.id)
    if examples_kind == TRANSFORMED:
        examples = outputs["transformed_examples"][0].uri
    else:
        gen = mlmd.latest_execution(store, "taxi", definition.EXAMPLE_GEN)
        assert gen is not None
        examples = mlmd.output_artifacts(store, gen.id)["examples"][0].uri
    return {
        "train_files": [os.path.join(examples, "Split-train", "*")],
        "eval_files": [os.path.join(examples, "Split-eval", "*")],
        "transform_output": outputs["transform_graph"][0].uri,
    }


def trainer_custom_config(settings: TrainerSettings) -> dict:
    """The Trainer's custom_config for the taxi default workload and these settings."""
    from components.training.custom_config import trainer_custom_config as custom_config
    from pipeline.config import load_config

    return custom_config(load_config().model, settings)


def measure(data: dict, steps: int, workers: int, custom: dict, workdir: Path) -> float:
    """Seconds one training of `steps` steps takes, in a fresh subprocess."""
    out = Path(tempfile.mkdtemp(dir=workdir))
    spec = {
        **data,
        "train_steps": steps,
        "eval_steps": 1,
        "serving_model_dir": str(out / "model"),
        "model_run_dir": str(out / "model_run"),
        "custom_config": custom,
    }
    code = f"""
import json, time
from tfx import v1 as tfx
spec = json.loads({json.dumps(json.dumps(spec))})
fn_args = tfx.components.FnArgs(**spec)
start = time.perf_counter()
if {workers} > 1:
    from components.training.local_workers import LocalWorkers
    LocalWorkers({workers}, 0, log=lambda line: None).run(fn_args, "components.training.run.run_fn")
else:
    from components.training.run import run_fn
    run_fn(fn_args)
print("SECONDS", time.perf_counter() - start)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"training failed:\n{result.stderr[-3000:]}")
    line = next(x for x in result.stdout.splitlines() if x.startswith("SECONDS"))
    return float(line.split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=128, help="per-replica batch")
    parser.add_argument("--workers", type=int, default=2, help="also time N local workers")
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=5200, help="steps of the long run, 1 process")
    parser.add_argument(
        "--long-multi", type=int, default=1200, help="steps of the long run, N workers"
    )
    parser.add_argument(
        "--examples",
        choices=("raw", "transformed"),
        default="raw",
        help="what training reads (trainer.examples): raw through the transform graph, or "
        "the examples Transform wrote out",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = prepare(workdir, args.examples)
    import tensorflow as tf

    from components.training.settings import TrainerSettings

    gpus = len(tf.config.list_physical_devices("GPU"))
    device = f"{gpus} GPU" if gpus else "CPU"
    settings = [
        (1, False, False),
        (1, True, False),
        (1, False, True),
        (1, True, True),
    ]
    if args.workers > 1:
        settings.append((args.workers, False, False))
    rows = []
    for workers, mixed, xla in settings:
        custom = trainer_custom_config(
            TrainerSettings(
                batch_size=args.batch,
                mixed_precision=mixed,
                jit_compile=xla,
                examples=args.examples,
            )
        )
        long_steps = args.long if workers == 1 else args.long_multi
        short = measure(data, args.short, workers, custom, workdir)
        long = measure(data, long_steps, workers, custom, workdir)
        global_batch = args.batch * workers * max(gpus, 1)
        rate = (long_steps - args.short) * global_batch / (long - short)
        rows.append(
            {
                "device": device,
                "examples": args.examples,
                "workers": workers,
                "mixed_precision": mixed,
                "jit_compile": xla,
                "global_batch": global_batch,
                "steps_short": args.short,
                "steps_long": long_steps,
                "seconds_short": round(short, 2),
                "seconds_long": round(long, 2),
                "examples_per_second": round(rate),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    print("\n| device | workers | mixed precision | XLA | global batch | examples/s |")
    print("|---|---:|---|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['device']} | {r['workers']} | {'on' if r['mixed_precision'] else 'off'} | "
            f"{'on' if r['jit_compile'] else 'off'} | {r['global_batch']} | "
            f"{r['examples_per_second']:,} |"
        )
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"trainer-{stamp}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
