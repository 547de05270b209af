"""The model-package protocol: what a package named by `model.package` provides.

A model package is a plain importable module with two functions:

- `preprocessing_fn(inputs, custom_config) -> dict`: the tf.Transform
  callback. `custom_config["workload"]` is the configuration's `model`
  section (read it with `workload_of(custom_config)`). It must output one
  transformed value per model input and the label under
  `contracts.LABEL_KEY` (binary: 0/1; multiclass: the class id, from a
  vocabulary named `contracts.LABEL_VOCABULARY`), and fill a missing cell of
  each feature with `workload.graph_fill`, which is what clients send for an
  empty cell.
- `build_model(context: ModelContext) -> tf.keras.Model`: a compiled Keras
  model whose inputs are keyed by the transformed names and whose output is
  binary: [batch, 1] probabilities; multiclass: [batch, K] probabilities.

The core does the rest for every package: reading the transformed data,
the distribution strategy, fitting, the serving signatures (the transform
graph inside, raw rows in), warmup requests, evaluation and the push.
docs/model_packages.md has a worked example. Only `load()` imports a
package: nothing else in the core names one.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from components.errors import UserError
from components.training.settings import TrainerSettings
from components.workload import Workload, from_plain

REQUIRED = ("preprocessing_fn", "build_model")
WORKLOAD_KEY = "workload"


class ModelPackageError(UserError):
    """`model.package` cannot be imported or does not implement the protocol."""


@dataclass(frozen=True)
class ModelContext:
    """What `build_model` gets.

    Attributes:
        workload: The configuration's `model` section.
        trainer: The `trainer` section (learning rate, widths, XLA...).
        tft_output: The Transform output (`tft.TFTransformOutput`):
            vocabulary sizes, the transformed feature spec.
        num_classes: Number of classes (multiclass), 2 for binary.
        steps_per_execution: Batches per compiled training call, chosen by
            the trainer from the step count; pass it to `model.compile`.
        jit_compile: Whether to compile with XLA (the trainer turns it off
            where the strategy cannot compile).
    """

    workload: Workload
    trainer: TrainerSettings
    tft_output: Any
    num_classes: int
    steps_per_execution: int
    jit_compile: bool


def custom_config(workload: Workload) -> dict[str, Any]:
    """The Transform's custom_config: the workload, as plain data."""
    from components.typed import to_plain

    return {WORKLOAD_KEY: to_plain(workload)}


def workload_of(config: Mapping[str, Any] | None) -> Workload:
    """The workload a component's custom_config carries.

    Raises:
        ModelPackageError: The custom_config carries none.
    """
    if not config or WORKLOAD_KEY not in config:
        raise ModelPackageError(
            f"custom_config has no {WORKLOAD_KEY!r}: this component must be built by "
            "pipeline.definition.create_pipeline"
        )
    return from_plain(config[WORKLOAD_KEY])


def load(path: str) -> ModuleType:
    """Imports the model package `path` and checks it implements the protocol.

    Raises:
        ModelPackageError: It cannot be imported (the message carries the
            import error) or lacks a protocol function.
    """
    try:
        module = importlib.import_module(path)
    except ImportError as e:
        raise ModelPackageError(
            f"model.package={path}: cannot import it: {type(e).__name__}: {e}; it must be an "
            "installed, importable module (e.g. models.declarative)"
        ) from None
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise ModelPackageError(
            f"model.package={path} ({getattr(module, '__file__', '?')}) does not implement the "
            f"model-package protocol: no function {' or '.join(missing)} "
            "(see docs/model_packages.md)"
        )
    return module


def preprocessing_fn_path(workload: Workload) -> str:
    """The import path Transform takes for the package's preprocessing_fn."""
    return f"{workload.package}.preprocessing_fn"
