"""Times the Evaluator's executor with TFX's own path (TFMA) and with the batched one.

Both run `components.evaluator.executor.Executor.Do` in this process on the
same inputs (an ExampleGen output folder and one or two trained models),
one after the other: first with the batched path switched off, as TFX's
Evaluator executor runs, then as the pipeline runs it. Then it compares
what both wrote: every metric value of every slice, the plots, the
validation result, `eval_config.json` and the blessing.

Usage:
    python bench/bench_evaluator.py --examples DIR --model DIR [--baseline DIR]
        [--slice-by trip_start_hour] [--workdir DIR]

DIR for --examples is an ExampleGen output (holding Split-eval/); for
--model and --baseline, a Trainer output (holding Format-Serving/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

IN_MEMORY = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def run(args: argparse.Namespace, out: Path, batched: bool) -> tuple[str, object, float]:
    """One Evaluator execution; returns (evaluation URI, blessing artifact, seconds)."""
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import artifact_utils, standard_artifacts

    from components import contracts
    from components.evaluator import executor as evaluator_executor
    from components.evaluator.eval_config import EvalSpec

    examples = standard_artifacts.Examples()
    examples.uri = args.examples
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri, model.id = args.model, 2
    inputs = {"examples": [examples], "model": [model]}
    if args.baseline:
        reference = standard_artifacts.Model()
        reference.uri = str(out / "reference")
        reference.set_int_custom_property(contracts.BASELINE_FOUND, 1)
        reference.set_int_custom_property(contracts.BASELINE_MODEL_ID, 1)
        reference.set_string_custom_property(contracts.BASELINE_MODEL_URI, args.baseline)
        inputs["baseline_model"] = [reference]
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(out / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out / "blessing")
    for artifact in (evaluation, blessing):
        os.makedirs(artifact.uri)
    executor = evaluator_executor.Executor(
        base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=IN_MEMORY, tmp_dir=str(out / "tmp")
        )
    )
    if not batched:
        executor._evaluate_batched = lambda *a: False  # type: ignore[method-assign]
    spec = EvalSpec("binary", "auc", tuple(args.slice_by)).to_json()
    started = time.monotonic()
    executor.Do(
        inputs,
        {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_spec": spec, "min_value": args.min_value, "max_drop": args.max_drop},
    )
    return evaluation.uri, blessing, time.monotonic() - started


def compare(theirs: tuple, ours: tuple) -> dict:
    """What the two executions wrote, compared."""
    import tensorflow_model_analysis as tfma

    def metrics(uri: str) -> dict:
        return {
            (s.slice_key.SerializeToString(), kv.key.SerializeToString()): kv.value
            for s in tfma.load_metrics(uri)
            for kv in s.metric_keys_and_values
        }

    a, b = metrics(theirs[0]), metrics(ours[0])
    equal = [k for k in a if k in b and a[k] == b[k]]
    uris = (theirs[0], ours[0])
    plots = [sorted(p.SerializeToString() for p in tfma.load_plots(u)) for u in uris]
    configs = [json.loads(Path(u, "eval_config.json").read_text()) for u in uris]
    return {
        "metric_values": len(a),
        "same_keys": a.keys() == b.keys(),
        "bit_equal_values": len(equal),
        "same_plots": plots[0] == plots[1],
        "same_validation": tfma.load_validation_result(theirs[0])
        == tfma.load_validation_result(ours[0]),
        "same_eval_config": configs[0] == configs[1],
        "same_blessing": sorted(os.listdir(theirs[1].uri)) == sorted(os.listdir(ours[1].uri))
        and theirs[1].mlmd_artifact.custom_properties == ours[1].mlmd_artifact.custom_properties,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--baseline")
    parser.add_argument("--slice-by", nargs="*", default=["trip_start_hour"])
    parser.add_argument("--min-value", type=float, default=0.8)
    parser.add_argument("--max-drop", type=float, default=0.01)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-evaluator-"))
    theirs = run(args, workdir / "tfma", batched=False)
    ours = run(args, workdir / "batched", batched=True)
    result = {"tfma_s": round(theirs[2], 1), "batched_s": round(ours[2], 1)}
    result.update(compare(theirs, ours))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
