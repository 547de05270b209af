"""One filesystem layer for local paths and object stores (gs://, s3://).

Local paths go through `os` and `shutil`; any other scheme through
tf.io.gfile, imported only then. Importing TensorFlow takes seconds, and the
commands that only read a local registry or a local ML Metadata store
(`registry list`, `lineage runs`) must answer in well under that.

tf.io.gfile handles gs:// out of the box. TF 2.16 no longer bundles the s3://
filesystem; importing `tensorflow_io` registers it, so `check_scheme` asks
for that package by name instead of failing later with a bare "File system
scheme 's3' not implemented".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
from typing import Any

_CHUNK = 4 << 20


def is_local(uri: str) -> bool:
    """Whether `uri` is a plain local path (renames are atomic there)."""
    return "://" not in uri


def register_filesystems(*uris: str) -> None:
    """Registers tensorflow-io's s3:// filesystem for tf.io.gfile when any of `uris` is on S3.

    TFX's components read and write through tf.io.gfile themselves, so a
    process whose data, pipeline root or registry is on S3 calls this
    before the first component runs (TF 2.16 has no s3:// of its own).
    """
    if any(uri.startswith("s3://") for uri in uris):
        with contextlib.suppress(ImportError):
            import tensorflow_io  # noqa: F401  (registers s3://)


def _gfile(*uris: str) -> Any:
    """tf.io.gfile, with tensorflow-io's filesystems registered for s3:// (TF 2.16 has none)."""
    import tensorflow as tf

    register_filesystems(*uris)
    return tf.io.gfile


def join(*parts: str) -> str:
    """Joins URI parts with '/', whatever the local OS separator."""
    return posixpath.join(*parts) if not is_local(parts[0]) else os.path.join(*parts)


def check_scheme(uri: str) -> None:
    """Fails early, naming the fix, when no filesystem handles `uri`'s scheme.

    Raises:
        ValueError: The scheme is not registered with tf.io.gfile.
    """
    if is_local(uri):
        return
    import tensorflow as tf

    scheme = uri.split("://", 1)[0]
    try:
        _gfile(uri).exists(uri)
    except tf.errors.UnimplementedError as e:
        hint = (
            " (install tensorflow-io, which registers s3:// for TF 2.16)" if scheme == "s3" else ""
        )
        raise ValueError(f"{uri}: no filesystem for {scheme}://{hint}") from e


def relative_files(root: str) -> list[str]:
    """Every file under `root`, as sorted '/'-separated paths relative to it."""
    # followlinks: as tf.io.gfile.walk, a symlinked folder's files are the model's too.
    walk = os.walk(root, followlinks=True) if is_local(root) else _gfile(root).walk(root)
    found: list[str] = []
    for directory, _, names in walk:
        rel_dir = os.path.relpath(directory, root) if is_local(root) else directory[len(root) :]
        rel_dir = rel_dir.replace(os.sep, "/").strip("/")
        rel_dir = "" if rel_dir == "." else rel_dir
        found.extend(f"{rel_dir}/{name}" if rel_dir else name for name in names)
    return sorted(found)


def _open(path: str, mode: str) -> Any:
    return open(path, mode) if is_local(path) else _gfile(path).GFile(path, mode)


def sha256(path: str) -> tuple[str, int]:
    """(hex sha256, size in bytes) of one file."""
    digest = hashlib.sha256()
    size = 0
    with _open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def size(path: str) -> int:
    """Size in bytes of one file, from its metadata (one stat, or one HEAD on object stores)."""
    if is_local(path):
        return os.stat(path).st_size
    return int(_gfile(path).stat(path).length)


def read_bytes(path: str) -> bytes:
    with _open(path, "rb") as f:
        return bytes(f.read())


def write_bytes(path: str, data: bytes) -> None:
    """Writes one file, creating its folder (object stores need none)."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with _open(path, "wb") as f:
        f.write(data)


def copy_file(source: str, target: str, overwrite: bool = True) -> None:
    """Copies one file, creating the target's folder on local disk.

    Object stores get no folder placeholders: on GCS and S3, `makedirs`
    writes `dir/` objects that would list a version folder before any of
    its files exist.

    Raises:
        FileExistsError: `overwrite` is False and `target` exists (local
            paths; tf.errors.AlreadyExistsError on object stores).
    """
    if is_local(target):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    if is_local(source) and is_local(target):
        if overwrite:
            shutil.copyfile(source, target)
            return
        # "x": the create fails if the file exists, with no window between check and copy.
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst)
        return
    _gfile(source, target).copy(source, target, overwrite=overwrite)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else bool(_gfile(path).exists(path))


def isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else bool(_gfile(path).isdir(path))


def children(path: str) -> list[str]:
    """Names directly under `path` (folder names without the trailing '/' of object stores)."""
    if not exists(path):
        return []
    names = os.listdir(path) if is_local(path) else _gfile(path).listdir(path)
    return sorted(name.rstrip("/") for name in names)


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    else:
        _gfile(path).makedirs(path)


def mtime(path: str) -> float | None:
    """Modification time in seconds of a file, or of the newest file under a folder.

    None for a folder without files: its age is unknown, not infinite.
    """
    if not isdir(path):
        if is_local(path):
            return os.stat(path).st_mtime
        return float(_gfile(path).stat(path).mtime_nsec) / 1e9
    times = [t for rel in relative_files(path) if (t := mtime(join(path, rel))) is not None]
    return max(times, default=None)


def remove(path: str) -> None:
    if is_local(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    elif _gfile(path).exists(path):
        _gfile(path).remove(path)


def remove_tree(path: str) -> None:
    if is_local(path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            remove(path)
    elif _gfile(path).exists(path):
        _gfile(path).rmtree(path)
