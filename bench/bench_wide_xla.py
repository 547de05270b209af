"""Why the wide part is an Embedding of width 1: training speed with and without XLA.

Builds the project's model shape (every registry feature; wide part, embeddings,
a 64-32 MLP, Adam, AUC) on random data and times `fit` for a fixed number of
steps, after one warm-up call, for two wide parts:

- `one_hot`: `CategoryEncoding(output_mode="one_hot")` + Dense(1), the model
  before the change (a bincount guarded by tf.Assert, which XLA cannot compile);
- `embedding`: one `Embedding(size, 1)` per categorical feature, summed, as in
  models/declarative/model.py (the same linear model: one weight per category).

Usage:
    python bench/bench_wide_xla.py [--steps 200] [--categories 300]
        [--variants one_hot:off,one_hot:on,embedding:off,embedding:on]

(`one_hot:on` takes about 0.2 s per step; leave it out for long runs.)

Prints a Markdown table of seconds and examples/second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from a checkout

BATCH = 128


def taxi_features() -> list[tuple[str, bool]]:
    """(transformed name, is a plain numeric) of the taxi default's features."""
    from components.contracts import transformed_name
    from pipeline.config import load_config

    return [
        (transformed_name(name), spec.kind == "numeric" and not spec.buckets)
        for name, spec in load_config().model.features.items()
    ]


def build(wide_kind: str, categories: int, jit: bool):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    inputs, wide, deep = {}, [], []
    for name, numeric in taxi_features():
        if numeric:
            inp = tf.keras.Input(shape=(1,), name=name)
            deep.append(inp)
        else:
            inp = tf.keras.Input(shape=(1,), name=name, dtype=tf.int64)
            if wide_kind == "embedding":
                wide.append(
                    tf.keras.layers.Flatten()(tf.keras.layers.Embedding(categories, 1)(inp))
                )
            else:
                wide.append(
                    tf.keras.layers.CategoryEncoding(num_tokens=categories, output_mode="one_hot")(
                        inp
                    )
                )
            deep.append(tf.keras.layers.Flatten()(tf.keras.layers.Embedding(categories, 8)(inp)))
        inputs[name] = inp
    if wide_kind == "embedding":
        wide_logit = tf.keras.layers.Add()(wide)
    else:
        wide_logit = tf.keras.layers.Dense(1)(tf.keras.layers.concatenate(wide))
    x = tf.keras.layers.concatenate(deep)
    for units in (64, 32):
        x = tf.keras.layers.Dense(units, activation="relu")(x)
    logit = tf.keras.layers.Add()([wide_logit, tf.keras.layers.Dense(1)(x)])
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(logit))
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC()],
        jit_compile=jit,
        steps_per_execution=20,
    )
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--categories", type=int, default=300)
    parser.add_argument(
        "--variants",
        default="one_hot:off,one_hot:on,embedding:off,embedding:on",
        help="comma-separated wide:xla pairs",
    )
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from components.private_apis import skip_tf_keras

    skip_tf_keras()
    rng = np.random.default_rng(0)
    n = BATCH * 40
    x = {
        name: (
            rng.standard_normal((n, 1)).astype("float32")
            if numeric
            else rng.integers(0, args.categories, (n, 1)).astype("int64")
        )
        for name, numeric in taxi_features()
    }
    y = rng.integers(0, 2, (n, 1))
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True).repeat()

    print("| wide part | XLA | seconds | examples/s |")
    print("|---|---|---:|---:|")
    for variant in args.variants.split(","):
        wide_kind, xla = variant.split(":")
        if wide_kind not in ("one_hot", "embedding") or xla not in ("on", "off"):
            parser.error(f"--variants: expected one_hot|embedding:on|off, got {variant!r}")
        jit = xla == "on"
        model = build(wide_kind, args.categories, jit)
        model.fit(data, steps_per_epoch=20, epochs=1, verbose=0)  # trace and compile
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        rate = args.steps * BATCH / seconds
        print(
            f"| {wide_kind} | {'on' if jit else 'off'} | {seconds:.2f} | {rate:,.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
