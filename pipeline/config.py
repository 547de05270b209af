"""The one typed pipeline configuration: YAML in, validated once, frozen.

Both runners and every CLI command take a `PipelineConfig`. Keys are dotted
paths (`trainer.train_steps`); a YAML file sets them and `--set key=value`
overrides them. An unknown key or a badly typed value fails at load time with
a message that names the key and lists what is valid.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "local.yaml"
_REMOTE_SCHEMES = ("gs://", "s3://", "hdfs://", "http://", "https://")


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def _is_remote(path: str) -> bool:
    return path.startswith(_REMOTE_SCHEMES)


def default_data_root() -> str:
    """Folder of the Chicago Taxi CSV (15,000 trips) that ships in the tfx wheel."""
    import tfx  # local import: config parsing should not need TFX unless used

    return str(Path(tfx.__file__).parent / "examples" / "chicago_taxi_pipeline" / "data" / "simple")


def default_schema_file() -> str:
    """The curated schema shipped as package data of `components`."""
    return str(Path(__file__).resolve().parent.parent / "components" / "schema" / "schema.pbtxt")


@dataclass(frozen=True)
class DataConfig:
    """Input data.

    Attributes:
        root: Folder of CSV files (local path, gs:// or s3://). Empty: the
            Chicago Taxi sample shipped inside the tfx wheel.
        schema_file: Curated schema (text proto). Empty: the one in the repo.
        train_buckets: Hash buckets of the train split.
        eval_buckets: Hash buckets of the eval split (ratio = buckets ratio).
    """

    root: str = ""
    schema_file: str = ""
    train_buckets: int = 4
    eval_buckets: int = 1

    def validate(self) -> None:
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

    pipeline_name: str = "taxi"
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
        model_name: Model name, the folder TF Serving watches.
        keep_versions: Retention: complete versions kept after each push
            (labelled versions are kept besides).
        warmup_requests: TF Serving warmup requests built from eval examples
            into each pushed version (TF Serving reads at most 1000).
    """

    uri: str = "build/registry"
    model_name: str = "taxi"
    keep_versions: int = 5
    warmup_requests: int = 100

    def validate(self) -> None:
        if not self.model_name or "/" in self.model_name or self.model_name.startswith("."):
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
    """Blessing thresholds (TFMA), applied to the eval split.

    Attributes:
        min_auc: The candidate's AUC must be at least this (value threshold).
        max_auc_drop: The candidate's AUC may be at most this much below the
            baseline's, the latest blessed model of the pipeline (change
            threshold). Ignored on the first run, which has no baseline.
    """

    min_auc: float = 0.8
    max_auc_drop: float = 0.01

    def validate(self) -> None:
        if not 0.0 <= self.min_auc <= 1.0:
            raise ConfigError(f"evaluator.min_auc must be in [0, 1], got {self.min_auc}")
        if not 0.0 <= self.max_auc_drop <= 1.0:
            raise ConfigError(f"evaluator.max_auc_drop must be in [0, 1], got {self.max_auc_drop}")


@dataclass(frozen=True)
class ComponentResources:
    """CPU, memory and accelerators of one component's pod on Kubeflow.

    0 leaves a value unset (the cluster's defaults apply).

    Attributes:
        cpu_request: CPUs requested.
        cpu_limit: CPU limit.
        memory_request_gb: Memory requested, GB (10^9 bytes, as KFP counts).
        memory_limit_gb: Memory limit, GB.
        accelerator_count: Accelerators (GPUs) per pod.
        accelerator_type: Kubernetes resource name of the accelerator, e.g.
            nvidia.com/gpu.
    """

    cpu_request: float = 0.0
    cpu_limit: float = 0.0
    memory_request_gb: float = 0.0
    memory_limit_gb: float = 0.0
    accelerator_count: int = 0
    accelerator_type: str = "nvidia.com/gpu"

    def check(self, where: str) -> None:
        for name in ("cpu_request", "cpu_limit", "memory_request_gb", "memory_limit_gb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(self, name)}")
        for request_name, limit_name in (
            ("cpu_request", "cpu_limit"),
            ("memory_request_gb", "memory_limit_gb"),
        ):
            request, limit = getattr(self, request_name), getattr(self, limit_name)
            if request and limit and request > limit:
                raise ConfigError(
                    f"{where}.{request_name}={request} exceeds {where}.{limit_name}={limit}"
                )
        if self.accelerator_count < 0:
            raise ConfigError(f"{where}.accelerator_count must be >= 0")
        if self.accelerator_count and not self.accelerator_type:
            raise ConfigError(f"{where}.accelerator_type must name a resource, e.g. nvidia.com/gpu")


@dataclass(frozen=True)
class ResourcesConfig:
    """Per-component pod resources on Kubeflow, keyed by node id.

    ExampleGen has no entry: TFX's Kubeflow v2 compiler builds file-based
    ExampleGen containers without the resource spec, so a value there would
    be silently dropped.
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

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).check(f"kubeflow.resources.{f.name}")


LAUNCHERS = ("local", "indexed_job", "tfjob")


@dataclass(frozen=True)
class TrainerKubernetesConfig:
    """Worker pods of the `indexed_job` and `tfjob` launchers.

    Attributes:
        image: Worker image with tag; empty: the Trainer step pod's own.
        namespace: Namespace of the workers; empty: the Trainer step pod's.
        service_account: Service account of the workers; empty: the Trainer
            step pod's.
        port: Port of TensorFlow's collective gRPC server in each pod.
        resources: CPU, memory and GPUs/TPU chips per worker.
        node_selector: Node labels per worker, e.g. a GPU or TPU node pool's.
    """

    image: str = ""
    namespace: str = ""
    service_account: str = ""
    port: int = 2222
    resources: ComponentResources = field(default_factory=ComponentResources)
    node_selector: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"trainer.kubernetes.port must be in 1..65535, got {self.port}")
        self.resources.check("trainer.kubernetes.resources")


@dataclass(frozen=True)
class TrainerConfig:
    """Training.

    Attributes:
        train_steps: Training steps (batches).
        eval_steps: Validation steps after training.
        workers: Data-parallel workers (MultiWorkerMirroredStrategy over
            TF_CONFIG); 1 trains in the Trainer's own process.
        launcher: What starts the workers: `local` (processes on the
            Trainer's host), `indexed_job` (a Kubernetes Indexed Job and a
            headless Service) or `tfjob` (a Kubeflow Training Operator TFJob).
        max_restarts: Restarts of a failed group of workers; each resumes
            from the BackupAndRestore checkpoint.
        batch_size: Examples per replica per step; the global batch is this
            times the replicas (workers x devices). `train_steps` counts
            global steps.
        learning_rate: Adam learning rate.
        hidden_units: Deep tower widths.
        embedding_dim: Categorical embedding width.
        seed: Seed for init and shuffling.
        mixed_precision: float16 compute on GPU, bfloat16 on TPU and CPU.
        jit_compile: Compile the train step with XLA.
        tpu: TPU for TPUStrategy (TPUClusterResolver name; `local` on a TPU
            VM or a GKE TPU node); empty for none.
        kubernetes: Worker pods of the Kubernetes launchers.
    """

    train_steps: int = 1000
    eval_steps: int = 100
    workers: int = 1
    launcher: str = "local"
    max_restarts: int = 2
    batch_size: int = 128
    learning_rate: float = 0.001
    hidden_units: tuple[int, ...] = (64, 32)
    embedding_dim: int = 8
    seed: int = 42
    mixed_precision: bool = False
    jit_compile: bool = False
    tpu: str = ""
    kubernetes: TrainerKubernetesConfig = field(default_factory=TrainerKubernetesConfig)

    def validate(self) -> None:
        for name in ("train_steps", "eval_steps", "batch_size", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 1:
            raise ConfigError(f"trainer.workers must be >= 1, got {self.workers}")
        if self.launcher not in LAUNCHERS:
            raise ConfigError(
                f"trainer.launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}"
            )
        if self.max_restarts < 0:
            raise ConfigError(f"trainer.max_restarts must be >= 0, got {self.max_restarts}")
        if self.tpu and self.workers > 1:
            raise ConfigError(
                f"trainer.tpu={self.tpu!r} with trainer.workers={self.workers}: a TPU slice "
                "trains as one worker; size it with its topology "
                "(trainer.kubernetes.node_selector), keep workers at 1"
            )
        self.kubernetes.validate()
        if not self.learning_rate > 0:
            raise ConfigError(f"trainer.learning_rate must be > 0, got {self.learning_rate}")
        if not self.hidden_units or any(u < 1 for u in self.hidden_units):
            raise ConfigError(
                f"trainer.hidden_units must be positive ints, got {self.hidden_units}"
            )


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
        experiment: Experiment that `submit` and `schedule` file runs under.
        resources: Per-component CPU, memory and accelerators.
    """

    image: str = "ghcr.io/example/taxi-mlops"
    image_tag: str = ""
    endpoint: str = ""
    namespace: str = "kubeflow"
    token_env: str = "KFP_TOKEN"
    experiment: str = "taxi"
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def validate(self) -> None:
        if not self.image or ":" in self.image.rsplit("/", 1)[-1]:
            raise ConfigError(
                f"kubeflow.image must be a repository without a tag (set kubeflow.image_tag), "
                f"got {self.image!r}"
            )
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"kubeflow.endpoint must be an http(s) URL, got {self.endpoint!r}")
        if not self.experiment:
            raise ConfigError("kubeflow.experiment must not be empty")
        self.resources.validate()


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run needs; see the section classes for each key."""

    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    @property
    def serving_model_dir(self) -> str:
        """`<registry.uri>/<model_name>`: the folder TF Serving watches."""
        return f"{self.registry.uri.rstrip('/')}/{self.registry.model_name}"


def valid_keys(cls: type = PipelineConfig, prefix: str = "") -> list[str]:
    """All dotted keys a config may set, e.g. `trainer.train_steps`."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys.extend(valid_keys(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Checks `value` against the field type `hint`; returns it typed."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(f"{key}: union types are not supported in config")  # pragma: no cover
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r} ({type(value).__name__})")
        return tuple(_coerce(f"{key}[{i}]", v, item_type) for i, v in enumerate(value))
    if origin is dict:
        key_type, item_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r} ({type(value).__name__})")
        return {
            _coerce(f"{key} (a key)", k, key_type): _coerce(f"{key}.{k}", v, item_type)
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r} ({type(value).__name__})")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r} ({type(value).__name__})")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r} ({type(value).__name__})")
        return value
    raise ConfigError(f"{key}: unsupported field type {hint!r}")  # pragma: no cover


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + str(k) for k in unknown)} at {where}; "
            f"valid keys: {', '.join(valid_keys(cls, prefix))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(prefix + name, value, hint)
    return cls(**kwargs)


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
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _absolute(path: str, base: Path) -> str:
    if not path or _is_remote(path) or os.path.isabs(path):
        return path
    return str((base / path).resolve())


def _resolve_paths(config: PipelineConfig, base: Path) -> PipelineConfig:
    """Makes local paths absolute (TFX artifact URIs must be) and fills defaults."""
    data = dataclasses.replace(
        config.data,
        root=_absolute(config.data.root, base) or default_data_root(),
        schema_file=_absolute(config.data.schema_file, base) or default_schema_file(),
    )
    run = dataclasses.replace(config.run, pipeline_root=_absolute(config.run.pipeline_root, base))
    metadata = dataclasses.replace(
        config.metadata, sqlite_path=_absolute(config.metadata.sqlite_path, base)
    )
    registry = dataclasses.replace(config.registry, uri=_absolute(config.registry.uri, base))
    return dataclasses.replace(config, data=data, run=run, metadata=metadata, registry=registry)


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
            value has the wrong type or range.
    """
    config_path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = config_path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {config_path}: {e.strerror}") from e
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{config_path} is not valid YAML: {e}") from e
    if not isinstance(tree, dict):
        raise ConfigError(
            f"{config_path}: expected a mapping of sections, got {type(tree).__name__}"
        )
    for override in overrides:
        key, value = parse_override(override)
        if key not in valid_keys():
            raise ConfigError(f"--set {key}: unknown key; valid keys: {', '.join(valid_keys())}")
        _apply_override(tree, key, value)
    try:
        config: PipelineConfig = _build(PipelineConfig, tree, "")
    except ConfigError as e:
        raise ConfigError(f"{config_path}: {e}") from None
    for section in dataclasses.fields(config):
        getattr(config, section.name).validate()
    return _resolve_paths(config, Path(base_dir) if base_dir is not None else Path.cwd())


def to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain YAML-able data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {section: plain(values) for section, values in dataclasses.asdict(config).items()}
