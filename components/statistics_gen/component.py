"""`StatisticsGen`: TFX's component (spec, driver, caching) with our executor."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.statistics_gen.executor import Executor


class StatisticsGen(tfx.components.StatisticsGen):
    """TFX's StatisticsGen, its statistics computed by our `executor.Executor`.

    Parameters, outputs and artifact properties are TFX's; only the executor
    differs, and it writes the same statistics (tests/test_statistics_gen.py).
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
