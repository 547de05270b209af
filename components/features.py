"""The feature registry: the single source of feature names, kinds and the label.

`preprocessing_fn`, the Keras inputs, the serving signatures and the TFMA
label key all derive from the tuples below; nothing else lists features.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    """How a raw feature is turned into a model input."""

    NUMERIC = "numeric"  # z-scored float
    BUCKETIZED = "bucketized"  # quantile buckets -> categorical index
    IDENTITY = "identity"  # small non-negative int used as its own index
    VOCABULARY = "vocabulary"  # top-k vocabulary plus OOV buckets


class RawType(enum.Enum):
    """The raw column's type in the CSV and the schema."""

    FLOAT = "float"
    INT = "int"
    STRING = "string"


@dataclass(frozen=True)
class Feature:
    """One raw column the model uses.

    Attributes:
        name: Raw column name in the CSV and in serving requests.
        kind: How `preprocessing_fn` transforms it.
        raw_type: Type of the raw column.
        default: Value that fills a missing cell.
        num_buckets: Bucket count (BUCKETIZED) or index range (IDENTITY).
        top_k: Vocabulary size cap (VOCABULARY).
        oov_buckets: Hash buckets for values outside the vocabulary.
    """

    name: str
    kind: Kind
    raw_type: RawType
    default: float | int | str
    num_buckets: int = 0
    top_k: int = 0
    oov_buckets: int = 0

    @property
    def transformed_name(self) -> str:
        return f"{self.name}_xf"

    @property
    def is_categorical(self) -> bool:
        return self.kind is not Kind.NUMERIC

    @property
    def vocabulary_name(self) -> str:
        """File name of the tf.Transform vocabulary (VOCABULARY only)."""
        return f"{self.name}_vocab"


@dataclass(frozen=True)
class Label:
    """The binary label: did the tip exceed `threshold` of the fare?"""

    name: str
    tips_column: str
    fare_column: str
    threshold: float


FEATURES: tuple[Feature, ...] = (
    Feature("fare", Kind.NUMERIC, RawType.FLOAT, 0.0),
    Feature("trip_miles", Kind.NUMERIC, RawType.FLOAT, 0.0),
    Feature("trip_seconds", Kind.NUMERIC, RawType.INT, 0),
    Feature("pickup_latitude", Kind.BUCKETIZED, RawType.FLOAT, 0.0, num_buckets=10),
    Feature("pickup_longitude", Kind.BUCKETIZED, RawType.FLOAT, 0.0, num_buckets=10),
    Feature("dropoff_latitude", Kind.BUCKETIZED, RawType.FLOAT, 0.0, num_buckets=10),
    Feature("dropoff_longitude", Kind.BUCKETIZED, RawType.FLOAT, 0.0, num_buckets=10),
    Feature("trip_start_hour", Kind.IDENTITY, RawType.INT, 0, num_buckets=24),
    Feature("trip_start_day", Kind.IDENTITY, RawType.INT, 0, num_buckets=8),
    Feature("trip_start_month", Kind.IDENTITY, RawType.INT, 0, num_buckets=13),
    Feature("pickup_community_area", Kind.VOCABULARY, RawType.INT, -1, top_k=100, oov_buckets=5),
    Feature("dropoff_community_area", Kind.VOCABULARY, RawType.INT, -1, top_k=100, oov_buckets=5),
    Feature("payment_type", Kind.VOCABULARY, RawType.STRING, "", top_k=10, oov_buckets=2),
    Feature("company", Kind.VOCABULARY, RawType.STRING, "", top_k=100, oov_buckets=10),
)

LABEL = Label(name="big_tipper", tips_column="tips", fare_column="fare", threshold=0.2)

# Raw columns of the data that the schema describes but the model ignores.
UNUSED_COLUMNS: tuple[str, ...] = (
    "trip_start_timestamp",
    "pickup_census_tract",
    "dropoff_census_tract",
)

# The column whose slices the Evaluator reports beside the overall metrics.
SLICE_COLUMNS: tuple[str, ...] = ("trip_start_hour",)


def feature(name: str) -> Feature:
    """Returns the registered feature called `name`.

    Raises:
        KeyError: `name` is not a registered feature; the message lists them.
    """
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}; registered: {', '.join(f.name for f in FEATURES)}")


def serving_columns() -> tuple[str, ...]:
    """Raw columns a serving request carries: the model's features, no label."""
    return tuple(f.name for f in FEATURES)


def label_input_columns() -> tuple[str, ...]:
    """Raw columns needed to compute the label (present in training data only)."""
    return tuple(c for c in (LABEL.tips_column, LABEL.fare_column) if c not in serving_columns())


def _check_registry() -> None:
    names = [f.name for f in FEATURES]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"feature registry lists {sorted(duplicates)} more than once")
    for f in FEATURES:
        if f.kind in (Kind.BUCKETIZED, Kind.IDENTITY) and f.num_buckets < 1:
            raise ValueError(f"feature {f.name!r} ({f.kind.value}) needs num_buckets >= 1")
        if f.kind is Kind.VOCABULARY and (f.top_k < 1 or f.oov_buckets < 1):
            raise ValueError(
                f"feature {f.name!r} (vocabulary) needs top_k >= 1 and oov_buckets >= 1"
            )


_check_registry()
