"""`manifest.json`: what a registry version is, where it came from, and its checksums.

Written last into every version, so its presence marks the version complete;
`verify` recomputes every checksum against it, and `check_sizes` compares
only what a listing shows (which files are there, and their sizes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from components import storage
from components.errors import UserError

MANIFEST_FILE = "manifest.json"
FORMAT = 1
# Keys every manifest carries; `verify` rejects one that lacks any.
REQUIRED_KEYS = ("format", "model_name", "version", "created", "files")


class ManifestError(UserError, ValueError):
    """A manifest is missing, unreadable or inconsistent with its version."""


def file_hashes(version_dir: str) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file of a version except the manifest itself."""
    return {
        rel: dict(
            zip(("sha256", "size"), storage.sha256(storage.join(version_dir, rel)), strict=True)
        )
        for rel in storage.relative_files(version_dir)
        if rel != MANIFEST_FILE
    }


def _file_sizes(version_dir: str) -> dict[str, dict[str, Any]]:
    """Size of every file of a version except the manifest, from file metadata alone."""
    return {
        rel: {"size": storage.size(storage.join(version_dir, rel))}
        for rel in storage.relative_files(version_dir)
        if rel != MANIFEST_FILE
    }


def to_json(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def read(version_dir: str) -> dict[str, Any]:
    """Reads and checks the shape of a version's manifest.

    Raises:
        ManifestError: No manifest (an incomplete version), bad JSON, or
            missing keys; the message names the file.
    """
    path = storage.join(version_dir, MANIFEST_FILE)
    try:
        raw = storage.read_bytes(path)
    except Exception as e:  # tf.errors.NotFoundError and friends, per scheme
        if not storage.exists(path):
            raise ManifestError(f"{path}: no manifest, the version is incomplete") from e
        raise ManifestError(f"{path}: cannot read: {e}") from e
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"{path}: missing keys {missing}")
    listed = manifest["files"]
    if not isinstance(listed, dict) or not all(isinstance(v, dict) for v in listed.values()):
        raise ManifestError(f"{path}: 'files' must be an object of path -> {{sha256, size}}")
    return manifest


def verify(version_dir: str, version: int) -> list[str]:
    """Recomputes a version's checksums against its manifest.

    Reads every byte of the version: `check_sizes` is the cheap subset.

    Returns:
        One line per problem (empty when the version is intact): a missing
        or unreadable manifest, a version number that disagrees with the
        folder, and every missing, extra, resized or altered file.
    """
    return _compare(version_dir, version, file_hashes)


def check_sizes(version_dir: str, version: int) -> list[str]:
    """What is wrong with a version that shows without reading its files.

    A truncated or lost file shows in its size or absence; an altered byte
    of the same size does not (only `verify` finds that).

    Returns:
        One line per problem (empty when nothing shows), worded as `verify`
        words them: a missing or unreadable manifest, a version number that
        disagrees with the folder, and every missing, extra or resized file.
    """
    return _compare(version_dir, version, _file_sizes)


def _compare(
    version_dir: str, version: int, measure: Callable[[str], dict[str, dict[str, Any]]]
) -> list[str]:
    """The manifest against what `measure` finds: sizes, and sha256 where it hashes."""
    try:
        manifest = read(version_dir)
    except ManifestError as e:
        return [str(e)]
    problems = []
    if manifest["version"] != version:
        problems.append(f"manifest says version {manifest['version']}, folder is {version}")
    expected: dict[str, Any] = manifest["files"]
    actual = measure(version_dir)
    for rel in sorted(set(expected) - set(actual)):
        problems.append(f"{rel}: missing")
    for rel in sorted(set(actual) - set(expected)):
        problems.append(f"{rel}: not in the manifest")
    for rel in sorted(set(expected) & set(actual)):
        want, got = expected[rel], actual[rel]
        if want.get("size") != got["size"]:
            problems.append(f"{rel}: size {got['size']}, manifest says {want.get('size')}")
        elif "sha256" in got and want.get("sha256") != got["sha256"]:
            problems.append(f"{rel}: sha256 {got['sha256']}, manifest says {want.get('sha256')}")
    return problems
