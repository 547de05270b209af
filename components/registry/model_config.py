"""TF Serving's model config file (ModelServerConfig text proto) with version labels.

TF Serving routes `/labels/stable` and `/labels/canary` by the
`version_labels` of its `--model_config_file`, and serves exactly the versions
of a `specific` policy. Moving a label is therefore an edit of this file,
which TF Serving re-reads every `--model_config_file_poll_wait_seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.errors import UserError


class ModelConfigError(UserError, ValueError):
    """A model config file is unreadable or lacks the model."""


def parse(text: str, source: str = "<text>") -> model_server_config_pb2.ModelServerConfig:
    """Parses a ModelServerConfig text proto, strictly (unknown fields fail).

    Raises:
        ModelConfigError: Not a valid ModelServerConfig; names `source`.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ModelConfigError(f"{source}: not a TF Serving ModelServerConfig: {e}") from e
    return config


def set_labels(
    config: model_server_config_pb2.ModelServerConfig,
    model_name: str,
    labels: Mapping[str, int],
    source: str = "<config>",
    moving: str | None = None,
) -> list[str]:
    """Makes `model_name` serve the labelled versions, under those labels.

    TF Serving refuses to move an existing label to a version it has not
    loaded (even with --allow_version_labels_for_unavailable_models, which
    covers new labels only), and keeps refusing on every poll. So a move
    takes two edits: the first adds the version to the served ones and
    leaves the label where it is (pending); once that version is AVAILABLE,
    the same move again takes the label there. Only the label being moved
    (`moving`; None: every label) can move: the others keep their place in
    the config, so a pending label never moves as a side effect. The
    versions the labels pointed to before stay served for one more change,
    so moving a label back (a rollback) takes effect at once. With no labels
    the model serves its latest version.

    Returns:
        The labels left pending (on another version than `labels` says).

    Raises:
        ModelConfigError: The config has no model called `model_name`.
    """
    model = _model(config, model_name, source)
    old_labels = dict(model.version_labels)
    policy = model.model_version_policy
    served = set(policy.specific.versions) if policy.HasField("specific") else set()
    model.ClearField("version_labels")
    policy.Clear()
    if not labels:
        policy.latest.num_versions = 1
        return []
    effective: dict[str, int] = {}
    for label, version in sorted(labels.items()):
        if label not in old_labels:
            effective[label] = version  # a new label may name a version still loading
        elif (moving is not None and label != moving) or (
            old_labels[label] != version and version not in served
        ):
            effective[label] = old_labels[label]
        else:
            effective[label] = version
    versions = set(labels.values()) | set(effective.values()) | set(old_labels.values())
    policy.specific.versions.extend(sorted(versions))
    for label, version in effective.items():
        model.version_labels[label] = version
    return [label for label in sorted(labels) if effective[label] != labels[label]]


def _model(
    config: model_server_config_pb2.ModelServerConfig, model_name: str, source: str
) -> model_server_config_pb2.ModelConfig:
    models = config.model_config_list.config
    for model in models:
        if model.name == model_name:
            return model
    names = ", ".join(m.name for m in models) or "none"
    raise ModelConfigError(f"{source}: no model named {model_name!r} (models: {names})")


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ModelConfigError(f"{path}: cannot read: {e.strerror}") from e


def read_model(path: str | Path, model_name: str) -> model_server_config_pb2.ModelConfig:
    """The config of `model_name` in a model config file.

    Raises:
        ModelConfigError: The file is missing, invalid or lacks the model.
    """
    return _model(parse(_read(path), str(path)), model_name, str(path))


def update_file(
    path: str | Path, model_name: str, labels: Mapping[str, int], moving: str | None = None
) -> list[str]:
    """Rewrites the labels of `model_name` in a model config file (see `set_labels`).

    Everything else in the file (base_path, other models, platform) is kept.

    Returns:
        The labels left pending until their version is loaded.

    Raises:
        ModelConfigError: The file is missing, invalid or lacks the model.
    """
    path = Path(path)
    text = _read(path)
    config = parse(text, str(path))
    pending = set_labels(config, model_name, labels, str(path), moving)
    _write(path, text, config)
    return pending


def _write(path: Path, old_text: str, config: model_server_config_pb2.ModelServerConfig) -> None:
    """Writes `config`, keeping the old file's leading comment block (text_format drops it)."""
    header = []
    for line in old_text.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            break
        header.append(line)
    path.write_text("".join(header) + text_format.MessageToString(config))


def serve_only(path: str | Path, model_name: str, version: int) -> None:
    """Rewrites `model_name` in a model config file to serve exactly `version`, unlabelled.

    A rollout track serves one version and the router, not a label, picks
    the track. Without labels TF Serving refuses nothing, and it loads the
    new version before it unloads the old one (its availability-preserving
    policy), so the track keeps answering through the change.

    Raises:
        ModelConfigError: The file is missing, invalid or lacks the model.
    """
    path = Path(path)
    text = _read(path)
    config = parse(text, str(path))
    model = _model(config, model_name, str(path))
    model.ClearField("version_labels")
    model.model_version_policy.Clear()
    model.model_version_policy.specific.versions.append(version)
    _write(path, text, config)
