"""The one filesystem layer of the registry: tf.io.gfile for every scheme.

tf.io.gfile reads and writes local paths and gs:// out of the box. TF 2.16
no longer bundles the s3:// filesystem; importing `tensorflow_io` registers
it, so `check_scheme` asks for that package by name instead of failing later
with a bare "File system scheme 's3' not implemented".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath

import tensorflow as tf

_CHUNK = 4 << 20


def is_local(uri: str) -> bool:
    """Whether `uri` is a plain local path (renames are atomic there)."""
    return "://" not in uri


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
    scheme = uri.split("://", 1)[0]
    if scheme == "s3":
        with contextlib.suppress(ImportError):
            import tensorflow_io  # noqa: F401  (registers s3://)
    try:
        tf.io.gfile.exists(uri)
    except tf.errors.UnimplementedError as e:
        hint = (
            " (install tensorflow-io, which registers s3:// for TF 2.16)" if scheme == "s3" else ""
        )
        raise ValueError(f"registry {uri}: no filesystem for {scheme}://{hint}") from e


def relative_files(root: str) -> list[str]:
    """Every file under `root`, as sorted '/'-separated paths relative to it."""
    found: list[str] = []
    for directory, _, files in tf.io.gfile.walk(root):
        rel_dir = os.path.relpath(directory, root) if is_local(root) else directory[len(root) :]
        rel_dir = rel_dir.replace(os.sep, "/").strip("/")
        rel_dir = "" if rel_dir == "." else rel_dir
        found.extend(f"{rel_dir}/{name}" if rel_dir else name for name in files)
    return sorted(found)


def sha256(path: str) -> tuple[str, int]:
    """(hex sha256, size in bytes) of one file."""
    digest = hashlib.sha256()
    size = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def size(path: str) -> int:
    """Size in bytes of one file, from its metadata (one stat, or one HEAD on object stores)."""
    return int(tf.io.gfile.stat(path).length)


def read_bytes(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Writes one file, creating its folder (object stores need none)."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def copy_file(source: str, target: str, overwrite: bool = True) -> None:
    """Copies one file, creating the target's folder on local disk.

    Object stores get no folder placeholders: on GCS and S3, `makedirs`
    writes `dir/` objects that would list a version folder before any of
    its files exist.
    """
    if is_local(target):
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tf.io.gfile.copy(source, target, overwrite=overwrite)


def exists(path: str) -> bool:
    return bool(tf.io.gfile.exists(path))


def children(path: str) -> list[str]:
    """Names directly under `path` (folder names without the trailing '/' of object stores)."""
    if not tf.io.gfile.exists(path):
        return []
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def makedirs(path: str) -> None:
    tf.io.gfile.makedirs(path)


def mtime(path: str) -> float | None:
    """Modification time in seconds of a file, or of the newest file under a folder.

    None for a folder without files: its age is unknown, not infinite.
    """
    if not tf.io.gfile.isdir(path):
        return float(tf.io.gfile.stat(path).mtime_nsec) / 1e9
    times = [t for rel in relative_files(path) if (t := mtime(join(path, rel))) is not None]
    return max(times, default=None)


def remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def remove_tree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
