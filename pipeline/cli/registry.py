"""`registry list|show|verify|label|rollback|prune`: inspect and manage the model registry.

The registry is the one the configuration names (`registry.uri`,
`registry.model_name`; override with `--set`). Every command prints what it
did; `verify` exits 1 when a version fails its checksums, and a bad request
(no such version or label, a broken model config file, a version to label
or roll back to that fails verify) exits 2 with a message naming what is
wrong. `list` flags damage it can see without reading the files; `rollback`
without `--to` skips, by name, the versions that fail verify.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline import config as config_lib
from pipeline.cli import common

if TYPE_CHECKING:
    from collections.abc import Callable

    from components.registry.store import Registry, Version
    from pipeline.cli.common import Commands
    from pipeline.config import PipelineConfig

_T = TypeVar("_T")


def registry_of(config: PipelineConfig) -> Registry:
    # Local registries need no TensorFlow; object stores load it (tf.io.gfile).
    from components.registry.store import Registry

    return Registry(config.registry.uri, config.registry.model_name)


def _labels_by_version(labels: dict[str, int]) -> dict[int, list[str]]:
    by_version: dict[int, list[str]] = {}
    for label, number in sorted(labels.items()):
        by_version.setdefault(number, []).append(label)
    return by_version


def _describe(registry: Registry, version: Version, labels: list[str]) -> dict[str, Any]:
    """What `list` shows of one version, and the damage it sees (check_sizes: no hashing)."""
    from components.registry.store import RegistryError

    entry: dict[str, Any] = {
        "version": version.number,
        "status": "incomplete",
        "labels": labels,
        "metric": None,
        "created": None,
        "run_id": None,
        "republished_from": None,
        "problems": [],
    }
    if not version.complete:
        return entry
    entry["status"] = "ok"
    try:
        m = registry.manifest(version.number)
    except RegistryError as e:
        return {**entry, "status": "bad manifest", "problems": [str(e)]}
    evaluation = m.get("evaluation") or {}
    # The metric the blessing gated on; manifests before it was recorded: AUC.
    name = (evaluation.get("thresholds") or {}).get("metric") or "auc"
    value = (evaluation.get("metrics") or {}).get(name)
    problems = registry.check_sizes(version.number)
    return {
        **entry,
        "status": "damaged" if problems else "ok",
        "metric": {"name": name, "value": value} if isinstance(value, float) else None,
        "created": m.get("created"),
        "run_id": (m.get("pipeline") or {}).get("run_id"),
        "republished_from": m.get("republished_from"),
        "problems": problems,
    }


def _row(entry: dict[str, Any]) -> str:
    """One line of `list`."""
    status = entry["status"]
    count = len(entry["problems"])
    if status == "damaged":
        status = f"damaged: {count} problem{'s' if count > 1 else ''}"
    elif status == "ok" and entry["republished_from"]:
        status = f"ok (copy of {entry['republished_from']})"
    metric = entry["metric"]
    shown = f"{metric['name']} {metric['value']:.4f}" if metric else ""
    labelled = ",".join(entry["labels"])
    created, run = entry["created"] or "", entry["run_id"] or ""
    return f"{entry['version']:>7}  {status:<20} {labelled:<14} {shown:<16} {created:<26} {run}"


def _list(args: argparse.Namespace) -> int:
    registry = registry_of(common.load_config(args))
    by_version = _labels_by_version(registry.labels())
    entries = [_describe(registry, v, by_version.get(v.number, [])) for v in registry.versions()]
    if common.wants_json(args):
        common.print_json({"model_dir": registry.model_dir, "versions": entries})
        return 0
    if not entries:
        print(f"{registry.model_dir}: no versions")
        return 0
    print(f"{registry.model_dir}")
    print(f"{'VERSION':>7}  {'STATUS':<20} {'LABELS':<14} {'METRIC':<16} {'CREATED':<26} RUN")
    damage = []
    for entry in entries:
        print(_row(entry))
        damage += [f"  version {entry['version']}: {problem}" for problem in entry["problems"]]
    if damage:
        # Sizes only: say so, since an altered byte of the same size shows only to verify.
        print("damage seen from file presence and sizes (`registry verify` also checks sha256):")
        print("\n".join(damage))
    return 0


def _show(args: argparse.Namespace) -> int:
    registry = registry_of(common.load_config(args))
    version = registry.resolve(args.version)
    manifest = registry.manifest(version.number)
    if common.wants_json(args):
        # Scripts get the whole manifest, every file's checksum included.
        common.print_json({"path": version.path, "manifest": manifest})
        return 0
    if not args.files:
        manifest["files"] = f"{len(manifest['files'])} files (--files to list them)"
    print(f"{version.path}")
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from components.registry.store import RegistryError

    registry = registry_of(common.load_config(args))
    if args.all:
        versions = registry.versions()
        if not versions:
            raise RegistryError(f"{registry.model_dir}: no versions to verify")
    else:
        versions = [registry.resolve(ref) for ref in (args.versions or ["latest"])]
    results: list[dict[str, Any]] = []
    for version in versions:
        problems = registry.verify(version.number)
        files = 0 if problems else len(registry.manifest(version.number)["files"])
        results.append(
            {"version": version.number, "ok": not problems, "files": files, "problems": problems}
        )
    if common.wants_json(args):
        common.print_json({"model_dir": registry.model_dir, "versions": results})
        return 1 if any(not r["ok"] for r in results) else 0
    for result in results:
        if result["problems"]:
            print(f"version {result['version']}: FAILED ({len(result['problems'])} problems)")
            for problem in result["problems"]:
                print(f"  {problem}")
        else:
            print(f"version {result['version']}: ok ({result['files']} files match their sha256)")
    return 1 if any(not r["ok"] for r in results) else 0


def _served_versions(registry: Registry, path: str | None) -> set[int]:
    """Versions the model config file serves; checks the file before anything changes."""
    from components.registry import model_config

    if not path:
        return set()
    model = model_config.read_model(path, registry.model_name)
    return set(model.model_version_policy.specific.versions)


def _write_model_config(
    registry: Registry, path: str | None, labels: dict[str, int], moving: str
) -> None:
    from components.registry import model_config

    if not labels:
        print(
            "warning: no labels left; the model config (if given) now serves the newest "
            "version, whatever it is"
        )
    if not path:
        return
    pending = model_config.update_file(path, registry.model_name, labels, moving)
    model = model_config.read_model(path, registry.model_name)
    versions = list(model.model_version_policy.specific.versions)
    registry.set_served(versions)
    print(
        f"model config {path}: labels {dict(model.version_labels) or 'none'}, serving "
        f"{versions or 'the latest version'}"
    )
    for label in pending:
        print(
            f"  {label!r} stays on version {model.version_labels[label]} for now: TF Serving "
            "refuses to move a label to a version it has not loaded. Apply this config, wait "
            f"until GET /v1/models/{registry.model_name}/versions/{labels[label]} says "
            f"AVAILABLE, then run `registry label {label} {labels[label]}` again."
        )


def _label(args: argparse.Namespace) -> int:
    registry = registry_of(common.load_config(args))
    _served_versions(registry, args.model_config)
    if args.remove:
        labels = registry.set_label(args.label, None)
        print(f"label {args.label!r} removed")
    else:
        if args.version is None:
            raise common.UsageError("give the version to label, or --remove")
        number = registry.resolve(args.version).number
        labels = registry.set_label(args.label, number)
        print(f"label {args.label!r} -> version {number}")
    _write_model_config(registry, args.model_config, labels, args.label)
    return 0


def _origin(registry: Registry, version: Version) -> int:
    """The version whose content `version` holds (itself, unless republished)."""
    source = registry.manifest(version.number).get("republished_from")
    return source if isinstance(source, int) else version.number


def _first_intact(
    versions: list[Version], act: Callable[[Version], _T], skip: bool = True
) -> tuple[Version, _T]:
    """Does `act` on the first of `versions` that passes verify, naming each one skipped.

    `act` is a store operation that verifies before it changes anything
    (set_label, republish), so each version is hashed once.

    Args:
        versions: The candidates, the preferred first.
        act: What to do with the first intact one.
        skip: Try the next candidate after a damaged one; False for a
            version the user named, which is refused rather than swapped.

    Returns:
        That version and what `act` returned.

    Raises:
        DamagedVersionError: `skip` is False and the version fails verify.
        RegistryError: Every candidate fails verify.
    """
    from components.registry.store import DamagedVersionError, RegistryError

    for version in versions:
        try:
            return version, act(version)
        except DamagedVersionError as e:
            if not skip:
                raise
            print(f"skipping version {e.number}: {e.summary}")
    raise RegistryError(
        "every version to roll back to fails verification "
        f"({', '.join(str(v.number) for v in versions)}); nothing was changed"
    )


def _rollback(args: argparse.Namespace) -> int:
    from components.registry.store import RegistryError

    registry = registry_of(common.load_config(args))
    loaded = _served_versions(registry, args.model_config) if args.label else set()
    complete = registry.complete_versions()
    if args.to is not None:
        targets = [registry.resolve(args.to)]
    else:
        if args.label:
            current = registry.labels().get(args.label)
            if current is None:
                raise RegistryError(f"{registry.model_name!r} has no label {args.label!r}")
        elif complete:
            # A republished copy stands for its source: rolling back twice
            # steps further back instead of re-serving what was rolled back.
            try:
                current = _origin(registry, complete[-1])
            except RegistryError as e:
                # Its source is unknown: roll back from the broken version itself.
                print(f"skipping version {complete[-1].number}: {e}")
                current = complete[-1].number
        else:
            raise RegistryError(f"{registry.model_dir}: no complete version to roll back from")
        older = [v for v in complete if v.number < current]
        if not older:
            raise RegistryError(
                f"{registry.model_dir}: no complete version older than {current} to roll back to"
            )
        # Newest first; with a label, versions TF Serving still has loaded
        # first: the label moves there at once.
        targets = sorted(older, key=lambda v: (v.number in loaded, v.number), reverse=True)
    if args.label:
        target, labels = _first_intact(
            targets, lambda v: registry.set_label(args.label, v.number), skip=args.to is None
        )
        print(f"rolled back: label {args.label!r} -> version {target.number}")
        _write_model_config(registry, args.model_config, labels, args.label)
        return 0
    reason = args.reason or "rollback"
    target, copy = _first_intact(
        targets, lambda v: registry.republish(v.number, reason=reason), skip=args.to is None
    )
    print(f"rolled back: version {target.number} republished as version {copy.number}")
    if registry.labels():
        print(
            "warning: this model has labels, so TF Serving's config likely serves specific "
            "versions and will not pick the new copy up; use --label to move a label instead"
        )
    return 0


def _prune(args: argparse.Namespace) -> int:
    config = common.load_config(args)
    registry = registry_of(config)
    keep = args.keep if args.keep is not None else config.registry.keep_versions
    deleted = registry.prune(keep)
    print(f"kept the newest {keep} and labelled versions; deleted {deleted or 'nothing'}")
    return 0


def register(commands: Commands) -> None:
    """Adds `registry list|show|verify|label|rollback|prune` to the CLI.

    Args:
        commands: The CLI's subcommands; each command sets `handler`.
    """
    registry = commands.add_parser("registry", help="inspect and manage the model registry")
    sub = registry.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    list_ = sub.add_parser("list", help="versions, status, labels, gated metric, run")
    list_.set_defaults(handler=_list)

    show = sub.add_parser("show", help="a version's manifest")
    show.add_argument("version", nargs="?", default="latest", help="number, label or latest")
    show.add_argument("--files", action="store_true", help="also list every file's sha256")
    show.set_defaults(handler=_show)

    verify = sub.add_parser("verify", help="recompute checksums; exit 1 on any mismatch")
    verify.add_argument("versions", nargs="*", help="numbers or labels (default: latest)")
    verify.add_argument("--all", action="store_true", help="every version, incomplete ones too")
    verify.set_defaults(handler=_verify)

    label = sub.add_parser("label", help="point a label (stable, canary) at a version")
    label.add_argument("label")
    label.add_argument("version", nargs="?", help="number, label or latest")
    label.add_argument("--remove", action="store_true", help="remove the label")
    label.add_argument(
        "--model-config", help="also rewrite the labels in this TF Serving model config file"
    )
    label.set_defaults(handler=_label)

    rollback = sub.add_parser(
        "rollback",
        help="serve an older version: republish it as the newest, or move --label to it",
    )
    rollback.add_argument("--to", help="version or label to go back to (default: the previous)")
    rollback.add_argument("--label", help="move this label instead of republishing")
    rollback.add_argument("--model-config", help="with --label: rewrite this model config file")
    rollback.add_argument("--reason", help="recorded in the republished version's manifest")
    rollback.set_defaults(handler=_rollback)

    prune = sub.add_parser("prune", help="apply retention now (push does it after each push)")
    prune.add_argument("--keep", type=int, help="versions to keep (default: keep_versions)")
    prune.set_defaults(handler=_prune)

    for parser in (list_, show, verify, label, rollback, prune):
        common.add_config_args(parser, config_lib.DEFAULT_CONFIG)
    for parser in (list_, show, verify):
        common.add_output_arg(parser)
