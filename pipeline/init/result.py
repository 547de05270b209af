"""What `init` decided and wrote, for the YAML writer and the CLI's summary table."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.init.infer import ColumnDecision, LabelDecision, Thresholds


@dataclass(frozen=True)
class InitResult:
    """The outcome of `run_init`.

    Attributes:
        config_path: The YAML config written, absolute.
        schema_path: The curated schema written beside it, absolute.
        data_root: The data folder, absolute.
        files: The CSV files read, absolute, sorted.
        rows: Data rows in them all.
        pipeline_name: `run.pipeline_name` and `registry.model_name`.
        label: The label column, its task and classes.
        columns: Every other column's decision, in header order.
        slice_by: The column the Evaluator slices by, if any.
        thresholds: The Evaluator's blessing thresholds.
        warnings: What will trouble the pipeline and needs a person (also
            written as comments in the config).
        date: The day the files were written, ISO format.
    """

    config_path: str
    schema_path: str
    data_root: str
    files: tuple[str, ...]
    rows: int
    pipeline_name: str
    label: LabelDecision
    columns: tuple[ColumnDecision, ...]
    slice_by: str | None
    thresholds: Thresholds
    warnings: tuple[str, ...]
    date: str

    @property
    def features(self) -> tuple[ColumnDecision, ...]:
        """The columns the model uses, in header order."""
        return tuple(c for c in self.columns if not c.ignored)

    @property
    def ignored(self) -> tuple[ColumnDecision, ...]:
        """The columns left out, each with its reason in `note`."""
        return tuple(c for c in self.columns if c.ignored)
