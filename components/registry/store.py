"""The registry bucket: `<uri>/<model_name>/<version>/`, as TF Serving watches it.

Guarantees, on every storage the registry takes:
- No partial version is ever visible under a number TF Serving would load.
  On local disk a version is assembled in a non-numeric `.staging-*` folder
  and renamed into place; the rename is atomic, and fails rather than
  replaces when the number was taken meanwhile. Object stores have no
  rename, so a version is uploaded in place with `saved_model.pb` last (a
  folder without it is not a SavedModel to TF Serving) and `manifest.json`
  last of all (a folder without it is incomplete to this registry).
- No overwrite, no clash. On local disk the rename decides. On object
  stores a push first claims its number with a small object in `.claims/`
  and keeps it only if no rival claim for that number appears when it lists
  them (GCS and S3 list with read-after-write consistency); on a tie every
  contender backs off and retries with a later number.
- Versions always increase: the next one is one past the highest version
  or claim ever seen, and retention never deletes the newest version.

Labels (`stable`, `canary`) live in `labels.json` beside the versions; the
retention pass never deletes a labelled version. Neither a label nor a
republish ever points at a version that fails `verify`.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components import storage
from components.errors import UserError
from components.registry import manifest

SAVED_MODEL_FILE = "saved_model.pb"
LABELS_FILE = "labels.json"
# The versions TF Serving's model config lists (written by the label and
# rollback commands): retention keeps them, loaded or about to be.
SERVED_FILE = "served.json"
# Deployment events (rollout start, promote, abort), oldest first: what
# served when.
DEPLOYMENTS_FILE = "deployments.json"
STAGING_PREFIX = ".staging-"
CLAIMS_DIR = ".claims"
# Abandoned leftovers (a killed push's staging folder or partial upload) are
# removed by retention only after this long, so that a push still running
# elsewhere is never cut from under its feet.
STALE_AFTER_SECONDS = 6 * 3600
_LABEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_PUBLISH_ATTEMPTS = 50


class RegistryError(UserError, ValueError):
    """A registry operation cannot be done; the message says what and where."""


class DamagedVersionError(RegistryError):
    """A version fails `verify`, so it must not be labelled or republished.

    Attributes:
        number: The version.
        problems: What `verify` found, one line each.
        summary: The first problem, and how many more there are.
    """

    def __init__(self, number: int, problems: list[str], refusing: str):
        self.number = number
        self.problems = problems
        more = len(problems) - 1
        self.summary = problems[0] + (
            f" (and {more} more: `registry verify {number}` lists them)" if more else ""
        )
        super().__init__(
            f"version {number} fails verification, refusing to {refusing}: {self.summary}"
        )


@dataclass(frozen=True)
class Version:
    """One numeric version folder.

    Attributes:
        number: The version number.
        path: Its folder.
        complete: Whether its manifest is there (written last by a push).
    """

    number: int
    path: str
    complete: bool


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _model_files(source_dir: str) -> list[str]:
    """The files a publish copies: all but a manifest, which each version writes anew.

    So a published version can itself be the source of a new one (republish).
    """
    return [rel for rel in storage.relative_files(source_dir) if rel != manifest.MANIFEST_FILE]


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _version_number(name: str) -> int | None:
    # TF Serving parses any int64 folder name; only canonical ones count here,
    # so "007" can never shadow 7.
    return int(name) if name.isdigit() and str(int(name)) == name else None


class Registry:
    """A model's versions in a registry bucket.

    Args:
        uri: Registry root (local path, gs://, s3://).
        model_name: The model, i.e. the folder TF Serving's base_path names.
        atomic_rename: Publish by renaming a staging folder (True), or by
            uploading in place, manifest last (False). Default: rename on
            local paths only.

    Raises:
        RegistryError: A bad model name or an unusable URI scheme.
    """

    def __init__(self, uri: str, model_name: str, atomic_rename: bool | None = None):
        if not model_name or "/" in model_name or model_name.startswith("."):
            raise RegistryError(f"model name must be a plain folder name, got {model_name!r}")
        try:
            storage.check_scheme(uri)
        except ValueError as e:
            raise RegistryError(str(e)) from e
        self.uri = uri.rstrip("/") or uri
        self.model_name = model_name
        self.model_dir = storage.join(self.uri, model_name)
        self.atomic_rename = storage.is_local(uri) if atomic_rename is None else atomic_rename

    # Reading.

    def versions(self) -> list[Version]:
        """Every numeric version folder, oldest first."""
        found = []
        for name in storage.children(self.model_dir):
            number = _version_number(name)
            if number is not None:
                path = storage.join(self.model_dir, name)
                found.append(
                    Version(
                        number, path, storage.exists(storage.join(path, manifest.MANIFEST_FILE))
                    )
                )
        return sorted(found, key=lambda v: v.number)

    def complete_versions(self) -> list[Version]:
        return [v for v in self.versions() if v.complete]

    def version(self, number: int) -> Version:
        """The version `number`.

        Raises:
            RegistryError: No such version; the message lists the ones there are.
        """
        versions = self.versions()
        for v in versions:
            if v.number == number:
                return v
        listed = ", ".join(str(v.number) for v in versions) or "none"
        raise RegistryError(
            f"{self.model_dir}: no version {number} of {self.model_name!r} (versions: {listed})"
        )

    def resolve(self, ref: str) -> Version:
        """A version by number, by label, or `latest` (the newest complete one).

        Raises:
            RegistryError: The reference names nothing in the registry.
        """
        if ref.isdigit():
            return self.version(int(ref))
        if ref == "latest":
            complete = self.complete_versions()
            if not complete:
                raise RegistryError(f"{self.model_dir}: no complete version yet")
            return complete[-1]
        labels = self.labels()
        if ref in labels:
            return self.version(labels[ref])
        raise RegistryError(
            f"{ref!r} is not a version number, 'latest' or a label of {self.model_name!r} "
            f"(labels: {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or 'none'})"
        )

    def manifest(self, number: int) -> dict[str, Any]:
        """The manifest of version `number`.

        Raises:
            RegistryError: No such version, or its manifest is missing or bad.
        """
        try:
            return manifest.read(self.version(number).path)
        except manifest.ManifestError as e:
            raise RegistryError(str(e)) from e

    def verify(self, number: int) -> list[str]:
        """Problems of version `number` (missing files, altered bytes...); empty if intact."""
        return manifest.verify(self.version(number).path, number)

    def check_sizes(self, number: int) -> list[str]:
        """Problems of version `number` that show without reading its files.

        Missing, extra and resized files against the manifest, or a bad
        manifest: cheap enough to run on every version a listing shows.
        Only `verify` finds a byte altered in place.
        """
        return manifest.check_sizes(self.version(number).path, number)

    def _require_intact(self, number: int, refusing: str) -> None:
        """Raises DamagedVersionError, naming the first problem, when `number` fails verify."""
        problems = self.verify(number)
        if problems:
            raise DamagedVersionError(number, problems, refusing)

    # Publishing.

    def publish(
        self,
        source_dir: str,
        metadata: Mapping[str, Any],
        extra_files: Mapping[str, str] | None = None,
    ) -> Version:
        """Copies a SavedModel into a new, complete version.

        Args:
            source_dir: The SavedModel folder.
            metadata: Manifest fields (pipeline, ML Metadata ids, metrics...);
                model_name, version, created and files are filled in here.
            extra_files: Files to add, relative path -> local source file
                (e.g. the warmup requests under assets.extra/).

        Returns:
            The new version.

        Raises:
            RegistryError: `source_dir` is not a SavedModel, an extra file
                would replace one of the model's, or no version number could
                be claimed.
        """
        extras = dict(extra_files or {})
        if not storage.exists(storage.join(source_dir, SAVED_MODEL_FILE)):
            raise RegistryError(f"{source_dir}: no {SAVED_MODEL_FILE}, not a SavedModel")
        clash = sorted(set(extras) & set(_model_files(source_dir)))
        if clash:
            raise RegistryError(f"{source_dir}: already has {clash}, refusing to replace them")
        storage.makedirs(self.model_dir)
        if self.atomic_rename:
            return self._publish_by_rename(source_dir, metadata, extras)
        return self._publish_in_place(source_dir, metadata, extras)

    def _copy_model(
        self,
        source_dir: str,
        target_dir: str,
        extras: Mapping[str, str],
        overwrite: bool = True,
    ) -> None:
        """Copies the model and extras, `saved_model.pb` last."""
        ordered = [(rel, storage.join(source_dir, rel)) for rel in _model_files(source_dir)]
        ordered += sorted(extras.items())
        ordered.sort(key=lambda item: item[0] == SAVED_MODEL_FILE)
        for rel, source in ordered:
            storage.copy_file(source, storage.join(target_dir, *rel.split("/")), overwrite)

    def _manifest_bytes(
        self, version_dir: str, number: int, metadata: Mapping[str, Any], hashes: Any = None
    ) -> bytes:
        body = dict(metadata)
        body.update(
            format=manifest.FORMAT,
            model_name=self.model_name,
            version=number,
            created=_now(),
            files=hashes if hashes is not None else manifest.file_hashes(version_dir),
        )
        return manifest.to_json(body)

    def _next_number(self) -> int:
        taken = [v.number for v in self.versions()]
        for name in storage.children(storage.join(self.model_dir, CLAIMS_DIR)):
            number = _version_number(name.split(".", 1)[0])
            if number is not None:
                taken.append(number)
        return max(taken, default=0) + 1

    def _publish_by_rename(
        self, source_dir: str, metadata: Mapping[str, Any], extras: Mapping[str, str]
    ) -> Version:
        staging = storage.join(self.model_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
        try:
            self._copy_model(source_dir, staging, extras)
            hashes = manifest.file_hashes(staging)
            for _ in range(_PUBLISH_ATTEMPTS):
                number = self._next_number()
                storage.write_bytes(
                    storage.join(staging, manifest.MANIFEST_FILE),
                    self._manifest_bytes(staging, number, metadata, hashes),
                )
                target = storage.join(self.model_dir, str(number))
                try:
                    # os.rename, not gfile: it fails with ENOTEMPTY/EEXIST when
                    # another push took `number` first, where a check-then-rename
                    # could replace that push's version.
                    os.rename(staging, target)
                except OSError as e:
                    if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        continue
                    raise
                return Version(number, target, True)
            raise RegistryError(
                f"{self.model_dir}: every version number tried was taken by another push "
                f"({_PUBLISH_ATTEMPTS} attempts)"
            )
        finally:
            storage.remove_tree(staging)

    def _claim(self) -> int:
        claims = storage.join(self.model_dir, CLAIMS_DIR)
        for _ in range(_PUBLISH_ATTEMPTS):
            number = self._next_number()
            mine = f"{number}.{uuid.uuid4().hex}"
            storage.write_bytes(storage.join(claims, mine), _now().encode())
            rivals = [
                n for n in storage.children(claims) if n.startswith(f"{number}.") and n != mine
            ]
            if not rivals and not storage.exists(storage.join(self.model_dir, str(number))):
                return number
            # Losing claims stay: they push the next number past this one.
            time.sleep(random.uniform(0.05, 0.5))
        raise RegistryError(
            f"{self.model_dir}: could not claim a version number in {_PUBLISH_ATTEMPTS} attempts"
        )

    def _publish_in_place(
        self, source_dir: str, metadata: Mapping[str, Any], extras: Mapping[str, str]
    ) -> Version:
        # Hashed from the source, before the upload: hashing what landed in
        # the bucket would bless whatever happened to be there.
        hashes = manifest.file_hashes(source_dir)
        for rel, path in extras.items():
            hashes[rel] = dict(zip(("sha256", "size"), storage.sha256(path), strict=True))
        number = self._claim()
        target = storage.join(self.model_dir, str(number))
        try:
            self._copy_model(source_dir, target, extras, overwrite=False)
            storage.write_bytes(
                storage.join(target, manifest.MANIFEST_FILE),
                self._manifest_bytes(target, number, metadata, hashes),
            )
        except BaseException:
            # saved_model.pb first: without it TF Serving cannot load the rest.
            with contextlib.suppress(Exception):
                storage.remove(storage.join(target, SAVED_MODEL_FILE))
            with contextlib.suppress(Exception):
                storage.remove_tree(target)
            raise
        return Version(number, target, True)

    def republish(self, number: int, reason: str = "") -> Version:
        """Publishes a copy of version `number` as the newest version (a rollback).

        Raises:
            DamagedVersionError: The version is incomplete or fails verify.
            RegistryError: There is no such version.
        """
        source = self.version(number)
        self._require_intact(number, "republish it")
        metadata = {
            k: v
            for k, v in manifest.read(source.path).items()
            if k not in ("format", "model_name", "version", "created", "files")
        }
        metadata["republished_from"] = number
        if reason:
            metadata["republish_reason"] = reason
        return self.publish(source.path, metadata)

    # Labels.

    def labels(self) -> dict[str, int]:
        """Label -> version, from labels.json (empty when there is none).

        Raises:
            RegistryError: labels.json is not a JSON object of label -> int.
        """
        labels = self._read_json(LABELS_FILE, {})
        if not isinstance(labels, dict) or not all(_is_version(v) for v in labels.values()):
            raise RegistryError(
                f"{storage.join(self.model_dir, LABELS_FILE)}: expected an object of label -> "
                "version number"
            )
        return labels

    def set_label(self, label: str, number: int | None) -> dict[str, int]:
        """Points `label` at version `number` (None removes it); returns all labels.

        The version is verified first (every checksum): TF Serving would load
        whatever the label names.

        Raises:
            DamagedVersionError: The version fails verify; labels.json is untouched.
            RegistryError: A bad label name, or the version is missing or incomplete.
        """
        if not _LABEL_NAME.match(label):
            raise RegistryError(
                f"label {label!r}: use lowercase letters, digits, '-' or '_', "
                "starting with a letter"
            )
        labels = self.labels()
        if number is None:
            if label not in labels:
                raise RegistryError(f"{self.model_name!r} has no label {label!r}")
            del labels[label]
        else:
            version = self.version(number)
            if not version.complete:
                raise RegistryError(
                    f"version {number} is incomplete (no manifest), cannot label it"
                )
            self._require_intact(number, f"label it {label!r}")
            labels[label] = number
        self._write_labels(labels)
        return labels

    def served(self) -> list[int]:
        """Versions a TF Serving model config lists, as last recorded (see set_served).

        Raises:
            RegistryError: served.json is not a JSON list of version numbers.
        """
        served = self._read_json(SERVED_FILE, [])
        if not isinstance(served, list) or not all(_is_version(v) for v in served):
            raise RegistryError(
                f"{storage.join(self.model_dir, SERVED_FILE)}: expected a list of version numbers"
            )
        return served

    def set_served(self, versions: list[int]) -> None:
        """Records the versions TF Serving is told to serve, so retention keeps them."""
        self._write_json(SERVED_FILE, sorted(set(versions)))

    def deployments(self) -> list[dict[str, Any]]:
        """Deployment events, oldest first, as `record_deployment` wrote them.

        Raises:
            RegistryError: deployments.json is not a JSON list of events with a time.
        """
        events = self._read_json(DEPLOYMENTS_FILE, [])
        if not isinstance(events, list) or not all(
            isinstance(e, dict) and isinstance(e.get("time"), str) for e in events
        ):
            raise RegistryError(
                f"{storage.join(self.model_dir, DEPLOYMENTS_FILE)}: expected a list of events, "
                "each an object with a time"
            )
        return events

    def record_deployment(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Appends a deployment event, stamped with the time (UTC); returns it.

        The whole file is rewritten (object stores have no append), so two
        commands recording at once can lose one event: run rollouts from
        one place (CI, or one operator).
        """
        events = self.deployments()
        stamped = {"time": _now(), **event}
        events.append(stamped)
        self._write_json(DEPLOYMENTS_FILE, events)
        return stamped

    def _read_json(self, name: str, missing: Any) -> Any:
        """A JSON file beside the versions; `missing` when there is none.

        Raises:
            RegistryError: The file is not valid JSON.
        """
        path = storage.join(self.model_dir, name)
        if not storage.exists(path):
            return missing
        try:
            return json.loads(storage.read_bytes(path))
        except json.JSONDecodeError as e:
            raise RegistryError(f"{path}: not valid JSON: {e}") from e

    def _write_labels(self, labels: Mapping[str, int]) -> None:
        self._write_json(LABELS_FILE, dict(sorted(labels.items())))

    def _write_json(self, name: str, value: Any) -> None:
        path = storage.join(self.model_dir, name)
        data = (json.dumps(value, indent=2) + "\n").encode()
        if self.atomic_rename:
            temp = f"{path}.{uuid.uuid4().hex}.tmp"
            storage.write_bytes(temp, data)
            os.replace(temp, path)
        else:
            storage.write_bytes(path, data)  # one object write is atomic

    # Retention.

    def prune(self, keep: int, now: float | None = None) -> list[int]:
        """Deletes complete versions beyond the newest `keep`, except labelled or served ones.

        Leftovers of killed pushes (staging folders, versions without a
        manifest) go too once older than STALE_AFTER_SECONDS.

        Returns:
            The deleted version numbers.

        Raises:
            RegistryError: `keep` < 1.
        """
        if keep < 1:
            raise RegistryError(f"retention must keep at least 1 version, got {keep}")
        now = time.time() if now is None else now
        labelled = set(self.labels().values()) | set(self.served())
        versions = self.versions()
        complete = [v for v in versions if v.complete]
        kept = {v.number for v in complete[-keep:]} | labelled
        deleted = []
        for v in versions:
            if v.complete and v.number not in kept:
                # Manifest first: an interrupted delete leaves an incomplete
                # version, never one that looks complete but lacks files.
                storage.remove(storage.join(v.path, manifest.MANIFEST_FILE))
                storage.remove_tree(v.path)
                deleted.append(v.number)
            elif not v.complete and v.number not in labelled and self._stale(v.path, now):
                storage.remove_tree(v.path)
                deleted.append(v.number)
        for name in storage.children(self.model_dir):
            path = storage.join(self.model_dir, name)
            if name.startswith(STAGING_PREFIX) and self._stale(path, now):
                storage.remove_tree(path)
        # Claims of deleted versions go, except at the top: the highest claim
        # is what keeps a number from being handed out twice.
        claims = storage.join(self.model_dir, CLAIMS_DIR)
        newest = max((v.number for v in versions), default=0)
        for name in storage.children(claims):
            number = _version_number(name.split(".", 1)[0])
            if number is not None and number in deleted and number < newest:
                storage.remove(storage.join(claims, name))
        return deleted

    @staticmethod
    def _stale(path: str, now: float) -> bool:
        changed = storage.mtime(path)
        return changed is not None and now - changed > STALE_AFTER_SECONDS
