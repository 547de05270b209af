"""What a report needs to know beyond ML Metadata: the pipeline and its thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import EvaluatorConfig, PipelineConfig


@dataclass(frozen=True)
class ReportSettings:
    """The settings a run's report is drawn with.

    Attributes:
        pipeline: The pipeline's name (run.pipeline_name).
        metric: The gated metric (evaluator.metric).
        min_value: Its floor (evaluator.min_value, or the run's parameter).
        max_drop: Its allowed drop against the baseline (evaluator.max_drop).
        slice_columns: The columns metrics are sliced by (model.slice_by).
    """

    pipeline: str
    metric: str
    min_value: float
    max_drop: float
    slice_columns: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: PipelineConfig) -> ReportSettings:
        return cls(
            pipeline=config.run.pipeline_name,
            metric=config.evaluator.metric,
            min_value=config.evaluator.min_value,
            max_drop=config.evaluator.max_drop,
            slice_columns=tuple(config.model.slice_by),
        )

    def thresholds(self) -> EvaluatorConfig:
        return EvaluatorConfig(metric=self.metric, min_value=self.min_value, max_drop=self.max_drop)
