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

import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from components.errors import UserError
from components.training.settings import TrainerSettings
from components.workload import Workload, from_plain

REQUIRED = ("preprocessing_fn", "build_model")
WORKLOAD_KEY = "workload"
CODE_KEY = "code_fingerprint"


class ModelPackageError(UserError, ValueError):
    """A configured module or function (the package, a derived label) cannot be used."""


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


def _source_files(module: str) -> list[Path]:
    """The Python files of an importable module or package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(
            p for location in spec.submodule_search_locations for p in Path(location).rglob("*.py")
        )
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


def fingerprint(workload: Workload) -> str:
    """A hash of the model package's code (and a derived label's module).

    TFX caches Transform and the Trainer by their parameters, and a
    preprocessing_fn named by import path is only its name: without this, an
    edited package would be served its previous outputs from cache.
    """
    modules = [workload.package]
    if workload.label.derive:
        modules.append(workload.label.derive.rpartition(".")[0])
    digest = hashlib.sha256()
    for module in modules:
        for path in _source_files(module):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def custom_config(workload: Workload) -> dict[str, Any]:
    """The custom_config of Transform and the Trainer: the workload, as plain data.

    Without what only the evaluation reads (the slices, the label's display
    name), so that changing those does not re-run Transform and training;
    with the code's fingerprint, so that changing the package does.
    """
    from components.typed import to_plain

    trained = replace(workload, slice_by=(), label=replace(workload.label, name=""))
    return {WORKLOAD_KEY: to_plain(trained), CODE_KEY: fingerprint(workload)}


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


def _import(path: str, key: str) -> ModuleType:
    try:
        return importlib.import_module(path)
    except ImportError as e:
        raise ModelPackageError(
            f"{key}={path}: cannot import it: {type(e).__name__}: {e}; it must be an "
            "installed, importable module (e.g. models.declarative)"
        ) from None
    except Exception as e:  # the module's own code failed: a team's package with a bug
        raise ModelPackageError(
            f"{key}={path}: importing it failed: {type(e).__name__}: {e}"
        ) from e


def import_function(path: str, key: str) -> Callable[..., Any]:
    """Imports `package.module.function`, a function the configuration names by path.

    Args:
        path: The dotted path.
        key: What named it, for messages (`model.label.derive`, `run_fn`).

    Raises:
        ModelPackageError: The path is not dotted, or names no function.
    """
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ModelPackageError(f"{key}={path!r} is not a dotted import path module.function")
    function = getattr(_import(module_name, key), name, None)
    if not callable(function):
        raise ModelPackageError(f"{key}={path}: {module_name} has no function {name!r}")
    return function


def load(path: str) -> ModuleType:
    """Imports the model package `path` and checks it implements the protocol.

    Raises:
        ModelPackageError: It cannot be imported (the message carries the
            import error) or lacks a protocol function.
    """
    module = _import(path, "model.package")
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
