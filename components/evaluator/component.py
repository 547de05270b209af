"""`Evaluator`: TFX's Evaluator component with our baseline-resolving executor.

tfx.v1 has no public way to swap a standard component's executor, so this
subclass sets EXECUTOR_SPEC from TFX's internal executor_spec module.
"""

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.evaluator.executor import Executor


class Evaluator(tfx.components.Evaluator):
    """Takes `baseline_model=` from a BaselineLookup output (a reference)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
