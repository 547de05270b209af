"""`CsvExampleGen`: TFX's component (spec, driver, splits, caching) with our executor."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.example_gen.executor import Executor


class CsvExampleGen(tfx.components.CsvExampleGen):
    """TFX's CsvExampleGen, its rows read by `components.example_gen.executor.Executor`.

    Parameters, driver (input fingerprint, span and version) and outputs are
    TFX's; only the executor differs, and it writes the same examples into
    the same splits (tests/test_example_gen.py).
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
