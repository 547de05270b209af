"""`AnomaliesGate`: a TFX component that fails on any recorded anomaly.

TFX's ExampleValidator only records anomalies; downstream components run
regardless. The pipeline makes Transform depend on this gate, so a failed
gate stops the run before anything is trained or pushed.
"""

from tfx import v1 as tfx

from components.gate.anomalies import check, count_non_finite, read_anomalies, split_names_of


@tfx.dsl.components.component
def AnomaliesGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    label_columns: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Raises AnomaliesFoundError listing each anomalous feature and kind.

    Args:
        anomalies: ExampleValidator's output.
        examples: ExampleGen's output, read only to count the NaN and inf
            values of a float feature the validator flagged.
        label_columns: Comma-separated raw label columns; an anomaly there
            (a single class in a split) is named as the label's.
    """
    splits = split_names_of(anomalies.split_names)
    check(
        read_anomalies(anomalies.uri, splits),
        [c for c in label_columns.split(",") if c],
        count_non_finite(examples.uri),
    )
