"""The one typed pipeline configuration: YAML in, validated once, frozen.

Both runners and every CLI command take a `PipelineConfig`. Keys are dotted
paths (`trainer.train_steps`); a YAML file sets them and `--set key=value`
overrides them. An unknown key or a badly typed value fails at load time with
a message that names the key and lists what is valid.

Two conveniences of the YAML files:
- `extends: other.yaml` (relative to the file) starts from that file; the
  sections given here are merged over it key by key, lists and values
  replace. `kubeflow.yaml` extends `local.yaml`, so the local run and the
  Kubeflow run train the same workload.
- `pkg://<package>/<path>` names a file or folder inside an installed Python
  package, e.g. the Chicago Taxi CSV inside the tfx wheel. It is resolved
  without importing the package.

Relative local paths resolve against the directory the command runs in.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import contracts
from components.errors import ConfigError
from components.training.settings import ComponentResources, TrainerSettings
from components.typed import build, key_type, to_plain
from components.typed import valid_keys as _valid_keys
from components.workload import Workload

__all__ = ["ConfigError", "PipelineConfig", "load_config", "to_dict", "valid_keys"]

# Names the configuration file when a command is given no --config (and the notebooks').
CONFIG_ENV = "PIPELINE_CONFIG"
CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "local.yaml"
KUBEFLOW_CONFIG = CONFIG_DIR / "kubeflow.yaml"
PACKAGE_SCHEME = "pkg://"
EXTENDS = "extends"
_REMOTE_SCHEMES = ("gs://", "s3://", "hdfs://", "http://", "https://")
# Keys that earlier versions used, and what they are now; both spellings work.
ALIASES = {
    "evaluator.min_auc": "evaluator.min_value",
    "evaluator.max_auc_drop": "evaluator.max_drop",
}


def _is_remote(path: str) -> bool:
    return path.startswith(_REMOTE_SCHEMES)


def package_path(uri: str, key: str = "path") -> str:
    """The local path of `pkg://<package>/<path>`, found without importing the package.

    Raises:
        ConfigError: The package is not installed, or the path is not in it.
    """
    rest = uri[len(PACKAGE_SCHEME) :]
    package, _, inner = rest.partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{key}={uri}: no installed Python package {package!r}")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise ConfigError(f"{key}={uri}: package {package!r} has no {inner!r} ({path})")
    return str(path)


@dataclass(frozen=True)
class DataConfig:
    """Input data.

    Attributes:
        root: Folder of CSV files (local path, gs://, s3:// or pkg://).
        schema_file: Curated schema (text proto) of the data's columns.
        train_buckets: Hash buckets of the train split.
        eval_buckets: Hash buckets of the eval split (ratio = buckets ratio).
    """

    root: str = ""
    schema_file: str = ""
    train_buckets: int = 4
    eval_buckets: int = 1

    def validate(self) -> None:
        if not self.root:
            raise ConfigError(
                "data.root is empty: set it to the folder of your CSV files (an empty value "
                "used to mean the taxi sample: pkg://tfx/examples/chicago_taxi_pipeline/data/simple)"
            )
        if not self.schema_file:
            raise ConfigError(
                "data.schema_file is empty: set it to the curated schema of your data "
                "(`python -m pipeline init` writes one)"
            )
        if self.train_buckets < 1 or self.eval_buckets < 1:
            raise ConfigError(
                "data.train_buckets and data.eval_buckets must be >= 1, got "
                f"{self.train_buckets} and {self.eval_buckets}"
            )


@dataclass(frozen=True)
class RunConfig:
    """Pipeline identity and outputs.

    Attributes:
        pipeline_name: Name of the pipeline in ML Metadata (baseline lookup
            and caching are scoped to it).
        pipeline_root: Where component outputs are written.
        enable_cache: Reuse outputs of components whose inputs are unchanged.
    """

    pipeline_name: str = ""
    pipeline_root: str = "build/pipeline_root"
    enable_cache: bool = True

    def validate(self) -> None:
        if not self.pipeline_name or not all(c.isalnum() or c in "-_" for c in self.pipeline_name):
            raise ConfigError(
                f"run.pipeline_name must be letters, digits, '-' or '_', got {self.pipeline_name!r}"
            )


METADATA_KINDS = ("sqlite", "mysql", "grpc")


@dataclass(frozen=True)
class MetadataConfig:
    """ML Metadata store connection.

    Attributes:
        kind: sqlite (embedded default), mysql (MySQL/MariaDB) or grpc (a
            metadata-grpc-service, as in Kubeflow).
        sqlite_path: SQLite file (kind sqlite).
        host: Server host (mysql, grpc).
        port: Server port (mysql, grpc).
        database: Database name (mysql).
        user: User name (mysql).
        password_env: Environment variable holding the password (mysql), so
            no secret lives in a config file.
    """

    kind: str = "sqlite"
    sqlite_path: str = "build/metadata.sqlite"
    host: str = "localhost"
    port: int = 3306
    database: str = "mlmd"
    user: str = "root"
    password_env: str = "MLMD_MYSQL_PASSWORD"

    def validate(self) -> None:
        if self.kind not in METADATA_KINDS:
            raise ConfigError(
                f"metadata.kind must be one of {', '.join(METADATA_KINDS)}, got {self.kind!r}"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"metadata.port must be in 1..65535, got {self.port}")


@dataclass(frozen=True)
class RegistryConfig:
    """Where blessed models are pushed: `<uri>/<model_name>/<version>/`.

    Attributes:
        uri: Registry root (local path, gs:// or s3://).
        model_name: Model name, the folder TF Serving watches; empty: the
            pipeline name.
        keep_versions: Retention: complete versions kept after each push
            (labelled versions are kept besides).
        warmup_requests: TF Serving warmup requests built from eval examples
            into each pushed version (TF Serving reads at most 1000).
        allow_signature_change: Push a version whose serving signatures
            (input names and dtypes, output keys) differ from the version
            labelled stable; the manifest records the change. Off: such a
            push is refused.
        extra_ops: Ops your model server registers beyond stock TF Serving
            2.16's (a custom build); a model using any other op is refused.
        tflite: TFLite variants stored under each version as
            tflite/<variant>.tflite (fp32, fp16, dynamic_int8, full_int8),
            each converted from serving_raw and measured against it in
            tf.lite.Interpreter; one beyond the tolerances is not stored and
            the manifest says why. Empty: none, and no time spent.
        tflite_eval_rows: Eval rows each variant is measured on (full_int8
            calibrates on the first 100 of them).
        tflite_max_abs_diff: Largest absolute difference allowed between a
            variant's outputs and the SavedModel's, on any measured row.
        tflite_max_metric_delta: Largest change of AUC (binary) or accuracy
            (multiclass) allowed between a variant and the SavedModel.
    """

    uri: str = "build/registry"
    model_name: str = ""
    keep_versions: int = 5
    warmup_requests: int = 100
    allow_signature_change: bool = False
    extra_ops: tuple[str, ...] = ()
    tflite: tuple[str, ...] = ()
    tflite_eval_rows: int = 200
    tflite_max_abs_diff: float = 0.01
    tflite_max_metric_delta: float = 0.005

    def validate(self) -> None:
        unknown = [v for v in self.tflite if v not in contracts.TFLITE_VARIANTS]
        if unknown or len(set(self.tflite)) != len(self.tflite):
            raise ConfigError(
                f"registry.tflite must list distinct variants of "
                f"{', '.join(contracts.TFLITE_VARIANTS)}, got {list(self.tflite)}"
            )
        if not 1 <= self.tflite_eval_rows <= 100_000:
            raise ConfigError(
                f"registry.tflite_eval_rows must be in 1..100000, got {self.tflite_eval_rows}"
            )
        for name in ("tflite_max_abs_diff", "tflite_max_metric_delta"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"registry.{name} must be >= 0, got {getattr(self, name)}")
        if "/" in self.model_name or self.model_name.startswith("."):
            raise ConfigError(f"registry.model_name must be a plain name, got {self.model_name!r}")
        if self.keep_versions < 1:
            raise ConfigError(f"registry.keep_versions must be >= 1, got {self.keep_versions}")
        if not 1 <= self.warmup_requests <= 1000:
            raise ConfigError(
                "registry.warmup_requests must be in 1..1000 (TF Serving's limit), got "
                f"{self.warmup_requests}"
            )


@dataclass(frozen=True)
class BeamConfig:
    """Beam pipeline args for every Beam-based component.

    Attributes:
        args: Passed verbatim. The default names FnApiRunner, the in-process
            engine Beam's DirectRunner uses for batch pipelines, directly:
            DirectRunner 2.74 first tries to fetch and start the Prism runner
            binary from the internet, which costs seconds per component (and
            fails offline) before it falls back. In-memory, one worker: on
            small data that beats multi-processing.
    """

    args: tuple[str, ...] = (
        "--runner=FnApiRunner",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    )

    def validate(self) -> None:
        bad = [a for a in self.args if not a.startswith("--")]
        if bad:
            raise ConfigError(f"beam.args entries must look like --flag=value, got {bad}")


@dataclass(frozen=True)
class EvaluatorConfig:
    """Blessing thresholds (TFMA), applied to the eval split's overall metrics.

    Attributes:
        metric: The gated metric; empty: auc (binary), accuracy (multiclass).
        min_value: The candidate's metric must be at least this (value threshold).
        max_drop: The candidate's metric may be at most this much below the
            baseline's, the latest blessed model of the pipeline (change
            threshold). Ignored on the first run, which has no baseline.
    """

    metric: str = ""
    min_value: float = 0.8
    max_drop: float = 0.01

    def validate(self) -> None:
        if not 0.0 <= self.min_value <= 1.0:
            raise ConfigError(f"evaluator.min_value must be in [0, 1], got {self.min_value}")
        if not 0.0 <= self.max_drop <= 1.0:
            raise ConfigError(f"evaluator.max_drop must be in [0, 1], got {self.max_drop}")


# Which histogram of the statistics TFDV's Jensen-Shannon divergence compares.
SKEW_HISTOGRAMS = ("quantiles", "standard")


@dataclass(frozen=True)
class SkewConfig:
    """`skew`: served requests against the training statistics of the served version (TFDV).

    Attributes:
        categorical_threshold: Largest L-infinity distance allowed between the
            requests' and the training data's value frequencies of a
            categorical feature (strings, or integers the schema calls
            categorical), in (0, 1].
        numeric_threshold: Largest approximate Jensen-Shannon divergence
            allowed for a numeric feature, in (0, 1]. TFDV approximates it
            from 10-bucket histograms: requests drawn from the training data
            measure up to about 0.15 on the taxi data.
        numeric_histogram: The histogram the divergence compares: quantiles
            (equal-mass buckets, steady on long-tailed features) or standard
            (equal-width buckets between the minimum and the maximum, which
            one outlier shifts).
        features: Per-feature thresholds by feature name (a feature of the
            model section), replacing its kind's threshold.
    """

    categorical_threshold: float = 0.1
    numeric_threshold: float = 0.2
    numeric_histogram: str = "quantiles"
    features: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        thresholds = {
            "skew.categorical_threshold": self.categorical_threshold,
            "skew.numeric_threshold": self.numeric_threshold,
            **{f"skew.features.{name}": value for name, value in self.features.items()},
        }
        for key, value in thresholds.items():
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{key} must be in (0, 1], got {value}")
        if self.numeric_histogram not in SKEW_HISTOGRAMS:
            raise ConfigError(
                f"skew.numeric_histogram must be one of {', '.join(SKEW_HISTOGRAMS)}, "
                f"got {self.numeric_histogram!r}"
            )


@dataclass(frozen=True)
class ResourcesConfig:
    """Per-component pod resources on Kubeflow, keyed by node id.

    ExampleGen has no entry: TFX's Kubeflow v2 compiler builds file-based
    ExampleGen containers without the resource spec, so a value there would
    be silently dropped.

    Attributes:
        statistics_gen: StatisticsGen's pod.
        schema_importer: The curated schema's importer pod.
        example_validator: ExampleValidator's pod.
        anomalies_gate: The anomalies gate's pod.
        transform: Transform's pod.
        trainer: The Trainer step's pod; worker pods of the indexed_job and
            tfjob launchers take trainer.kubernetes.resources.
        baseline_lookup: The baseline lookup's pod.
        evaluator: Evaluator's pod.
        pusher: The registry pusher's pod.
        run_report: The run report's pod.
    """

    statistics_gen: ComponentResources = field(default_factory=ComponentResources)
    schema_importer: ComponentResources = field(default_factory=ComponentResources)
    example_validator: ComponentResources = field(default_factory=ComponentResources)
    anomalies_gate: ComponentResources = field(default_factory=ComponentResources)
    transform: ComponentResources = field(default_factory=ComponentResources)
    trainer: ComponentResources = field(default_factory=ComponentResources)
    baseline_lookup: ComponentResources = field(default_factory=ComponentResources)
    evaluator: ComponentResources = field(default_factory=ComponentResources)
    pusher: ComponentResources = field(default_factory=ComponentResources)
    run_report: ComponentResources = field(default_factory=ComponentResources)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).check(f"kubeflow.resources.{f.name}")


@dataclass(frozen=True)
class KubeflowConfig:
    """Compiling for, and submitting to, Kubeflow Pipelines.

    Attributes:
        image: Component image repository, without a tag.
        image_tag: Image tag; empty: derived from the git revision
            (`git describe`-style short sha, `-dirty` with local changes).
        endpoint: KFP API server URL. The KFP_ENDPOINT variable overrides it.
        namespace: Kubeflow profile namespace of experiments and runs. The
            KFP_NAMESPACE variable overrides it.
        token_env: Variable holding a bearer token; when unset, the in-cluster
            service account token is used if present.
        experiment: Experiment that `submit` and `schedule` file runs under;
            empty: the pipeline name.
        resources: Per-component CPU, memory and accelerators.
    """

    image: str = "ghcr.io/example/mlops-pipeline"
    image_tag: str = ""
    endpoint: str = ""
    namespace: str = "kubeflow"
    token_env: str = "KFP_TOKEN"
    experiment: str = ""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def validate(self) -> None:
        if not self.image or ":" in self.image.rsplit("/", 1)[-1]:
            raise ConfigError(
                f"kubeflow.image must be a repository without a tag (set kubeflow.image_tag), "
                f"got {self.image!r}"
            )
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"kubeflow.endpoint must be an http(s) URL, got {self.endpoint!r}")
        self.resources.validate()


@dataclass(frozen=True)
class RolloutTrack:
    """One track of a canary rollout: a TF Serving of its own behind the front.

    Attributes:
        rest: host:port the front proxies this track's REST requests to.
        grpc: host:port the front passes this track's gRPC calls to.
        model_config: The model config file this track's TF Serving reads
            (in the overlay, applied by `rollout.apply_command`); `rollout`
            writes the one version it serves.
    """

    rest: str = ""
    grpc: str = ""
    model_config: str = ""

    def validate(self, name: str = "rollout.stable") -> None:
        for key in ("rest", "grpc"):
            value = getattr(self, key)
            host, sep, port = value.rpartition(":")
            if not (sep and host and port.isdigit()):
                raise ConfigError(f"{name}.{key} must be host:port, got {value!r}")


def _stable_track() -> RolloutTrack:
    return RolloutTrack(
        "taxi-serving:8501",
        "taxi-serving:8500",
        "kubernetes/serving/overlays/canary/stable-track/models.config",
    )


def _canary_track() -> RolloutTrack:
    return RolloutTrack(
        "taxi-serving-canary:8501",
        "taxi-serving-canary:8500",
        "kubernetes/serving/overlays/canary/canary-track/models.config",
    )


@dataclass(frozen=True)
class RolloutConfig:
    """Canary rollouts behind the TLS front (kubernetes/serving/overlays/canary).

    Attributes:
        stable: The stable track.
        canary: The canary track.
        routes_file: The front's routes.conf that `rollout` writes: both
            tracks' upstreams and the canary's weight.
        apply_command: Run after the files change (argv), e.g. `kubectl
            apply -k kubernetes/serving/overlays/canary`; empty: only the
            files are written.
        steps: Canary weights, in percent, that `promote` steps through;
            the last is 100, which makes the canary stable.
        endpoint: The front's REST URL, through which `rollout` waits for a
            track to have the version AVAILABLE (the track header pins each
            check); empty: no wait.
        wait_timeout_s: How long to wait for a track to load its version.
        prometheus_url: Prometheus' HTTP API, read by the promotion gate.
        window: PromQL range over which the gate compares the tracks.
        min_requests: Canary requests the window must hold before a step.
        max_error_rate_increase: The canary's error rate may exceed stable's
            by this much (a fraction: 0.01 is one point).
        max_p99_ratio: The canary's p99 latency may be this many times stable's...
        p99_slack_ms: ...plus this many milliseconds (at sub-millisecond
            latencies a ratio alone flags noise).
        track_label: The Prometheus label that names the track (the
            ServiceMonitor copies it from each track's Service).
        selector: More PromQL label matchers for every gate query, e.g.
            `namespace="taxi-serving"`.
    """

    stable: RolloutTrack = field(default_factory=_stable_track)
    canary: RolloutTrack = field(default_factory=_canary_track)
    routes_file: str = "kubernetes/serving/overlays/canary/stable-track/routes.conf"
    apply_command: tuple[str, ...] = ()
    steps: tuple[int, ...] = (10, 50, 100)
    endpoint: str = ""
    wait_timeout_s: float = 600.0
    prometheus_url: str = ""
    window: str = "5m"
    min_requests: int = 100
    max_error_rate_increase: float = 0.01
    max_p99_ratio: float = 1.25
    p99_slack_ms: float = 5.0
    track_label: str = "track"
    selector: str = ""

    def validate(self) -> None:
        self.stable.validate("rollout.stable")
        self.canary.validate("rollout.canary")
        steps = list(self.steps)
        if not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] != 100:
            raise ConfigError(
                "rollout.steps must be increasing percentages ending at 100, e.g. [10, 50, 100]; "
                f"got {steps}"
            )
        for key in ("endpoint", "prometheus_url"):
            value = getattr(self, key)
            if value and not value.startswith(("http://", "https://")):
                raise ConfigError(f"rollout.{key} must be an http(s) URL, got {value!r}")
        if not re.fullmatch(r"[0-9]+[smhd]", self.window):
            raise ConfigError(
                f"rollout.window must be a PromQL duration like 5m, got {self.window!r}"
            )
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", self.track_label):
            raise ConfigError(
                f"rollout.track_label must be a Prometheus label name, got {self.track_label!r}"
            )
        if self.min_requests < 1:
            raise ConfigError(f"rollout.min_requests must be >= 1, got {self.min_requests}")
        if self.max_error_rate_increase < 0 or self.max_p99_ratio < 1 or self.p99_slack_ms < 0:
            raise ConfigError(
                "rollout: max_error_rate_increase and p99_slack_ms must be >= 0 and "
                "max_p99_ratio >= 1"
            )
        if self.wait_timeout_s <= 0:
            raise ConfigError(f"rollout.wait_timeout_s must be > 0, got {self.wait_timeout_s}")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run needs; see the section classes for each key.

    `model` is the workload (components/workload.py) and `trainer` the
    trainer settings (components/training/settings.py): the components read
    those two sections back from their parameters, so they are defined there.

    Attributes:
        data: Input data: the CSV folder, its curated schema, the split.
        run: Pipeline name, pipeline root and caching.
        metadata: The ML Metadata store.
        registry: Where blessed models are pushed, and retention.
        beam: Beam pipeline args of every Beam-based component.
        model: The workload: label, features, slices and the model package.
        trainer: Training steps, batch, distribution and hardware.
        evaluator: The blessing's gated metric and thresholds.
        kubeflow: Image, endpoint, namespace and pod resources on Kubeflow.
        rollout: Canary rollouts of served versions behind the TLS front.
        skew: Thresholds of `skew`, served requests against the training data.
    """

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    model: Workload = field(default_factory=Workload)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    skew: SkewConfig = field(default_factory=SkewConfig)

    @property
    def serving_model_dir(self) -> str:
        """`<registry.uri>/<model_name>`: the folder TF Serving watches."""
        return f"{self.registry.uri.rstrip('/')}/{self.registry.model_name}"

    def validate(self) -> None:
        """Checks every section, then what spans sections."""
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()
        allowed = contracts.GATE_METRICS[self.model.task]
        if self.evaluator.metric not in allowed:
            raise ConfigError(
                f"evaluator.metric={self.evaluator.metric!r} does not suit a "
                f"{self.model.task} label (model.label.task); one of {', '.join(allowed)}"
            )
        unknown = sorted(set(self.skew.features) - set(self.model.features))
        if unknown:
            raise ConfigError(
                f"skew.features: {', '.join(unknown)} not feature(s) of the model section; "
                f"its features: {', '.join(self.model.features)}"
            )


def valid_keys(cls: type = PipelineConfig, prefix: str = "") -> list[str]:
    """All dotted keys a config may set, e.g. `trainer.train_steps`."""
    return _valid_keys(cls, prefix)


def parse_override(text: str) -> tuple[str, Any]:
    """Parses one `--set dotted.key=value`; the value is read as YAML.

    Raises:
        ConfigError: `text` has no `=` or an empty key.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects dotted.key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML: {e}") from e
    return key.strip(), value


def _apply_override(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _read_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML file's sections, with what it `extends` merged underneath."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ConfigError(f"{path}: `extends` goes round in a circle: {chain}")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree).__name__}")
    parent = tree.pop(EXTENDS, None)
    if parent is None:
        return tree
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: `extends` must name a YAML file, got {parent!r}")
    where = (
        Path(package_path(parent, f"{path}: extends"))
        if parent.startswith(PACKAGE_SCHEME)
        else path.parent / parent
    )
    base = _read_tree(where, (*seen, path.resolve()))
    return _merge(base, tree)


def _unalias(tree: dict[str, Any], where: str) -> list[str]:
    """Renames the old spellings of keys in place; returns the old keys it found."""
    found = []
    for old, new in ALIASES.items():
        section, old_name = old.split(".")
        new_name = new.split(".")[1]
        values = tree.get(section)
        if isinstance(values, dict) and old_name in values:
            if new_name in values:
                raise ConfigError(f"{where}: set {new} or {old} (its old name), not both")
            values[new_name] = values.pop(old_name)
            found.append(old)
    return found


def _check_override_key(key: str) -> None:
    try:
        key_type(PipelineConfig, key)
    except KeyError:
        raise ConfigError(
            f"--set {key}: unknown key; valid keys: {', '.join(valid_keys())}"
        ) from None


def _absolute(path: str, base: Path, key: str) -> str:
    if path.startswith(PACKAGE_SCHEME):
        return package_path(path, key)
    if not path or _is_remote(path) or os.path.isabs(path):
        return path
    return str((base / path).resolve())


def _resolve(config: PipelineConfig, base: Path) -> PipelineConfig:
    """Makes local paths absolute (TFX artifact URIs must be) and fills derived defaults."""
    data = dataclasses.replace(
        config.data,
        root=_absolute(config.data.root, base, "data.root"),
        schema_file=_absolute(config.data.schema_file, base, "data.schema_file"),
    )
    run = dataclasses.replace(
        config.run, pipeline_root=_absolute(config.run.pipeline_root, base, "run.pipeline_root")
    )
    metadata = dataclasses.replace(
        config.metadata,
        sqlite_path=_absolute(config.metadata.sqlite_path, base, "metadata.sqlite_path"),
    )
    registry = dataclasses.replace(
        config.registry,
        uri=_absolute(config.registry.uri, base, "registry.uri"),
        model_name=config.registry.model_name or config.run.pipeline_name,
    )
    evaluator = dataclasses.replace(
        config.evaluator,
        metric=config.evaluator.metric or contracts.GATE_METRICS.get(config.model.task, ("",))[0],
    )
    kubeflow = dataclasses.replace(
        config.kubeflow, experiment=config.kubeflow.experiment or config.run.pipeline_name
    )
    return dataclasses.replace(
        config,
        data=data,
        run=run,
        metadata=metadata,
        registry=registry,
        evaluator=evaluator,
        kubeflow=kubeflow,
    )


# Files written before the model section existed trained the taxi default
# implicitly; this is how to keep doing that.
_TAXI_DEFAULT = f"{PACKAGE_SCHEME}pipeline/configs/local.yaml"


def _check_workload_given(tree: Mapping[str, Any], where: str) -> None:
    if "model" not in tree:
        raise ConfigError(
            f"{where} has no `model` section, which says what to train: write one with "
            f"`python -m pipeline init`, or, to train the Chicago Taxi default as files of "
            f"earlier versions did, add `extends: {_TAXI_DEFAULT}` at its top"
        )


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
) -> PipelineConfig:
    """Loads, overrides, validates and resolves a pipeline configuration.

    Args:
        path: YAML file; None for `pipeline/configs/local.yaml`.
        overrides: `dotted.key=value` strings, applied in order.
        base_dir: Folder that relative local paths are resolved against;
            None for the current directory.

    Returns:
        The validated configuration with absolute local paths.

    Raises:
        ConfigError: The file is missing or malformed, a key is unknown, or a
            value has the wrong type or range; the message names the file or
            `--set` as the source.
    """
    config_path = Path(path) if path is not None else DEFAULT_CONFIG
    tree = _read_tree(config_path)
    aliased = _unalias(tree, str(config_path))
    try:
        config: PipelineConfig = build(PipelineConfig, tree, "")
    except ConfigError as e:
        raise ConfigError(f"{config_path}: {e}") from None
    _check_workload_given(tree, str(config_path))
    for override in overrides:
        key, value = parse_override(override)
        if key in ALIASES:
            aliased.append(key)
            key = ALIASES[key]
        _check_override_key(key)
        _apply_override(tree, key, value)
        try:
            config = build(PipelineConfig, tree, "")
        except ConfigError as e:
            raise ConfigError(f"--set {override}: {e}") from None
    resolved = _resolve(config, Path(base_dir) if base_dir is not None else Path.cwd())
    resolved.validate()
    if aliased and resolved.evaluator.metric != "auc":
        raise ConfigError(
            f"{', '.join(sorted(set(aliased)))}: the AUC thresholds' old names apply to "
            f"evaluator.metric auc; this workload gates on {resolved.evaluator.metric}: set "
            "evaluator.min_value and evaluator.max_drop"
        )
    return resolved


def to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain YAML-able data (tuples become lists)."""
    result: dict[str, Any] = to_plain(config)
    return result
