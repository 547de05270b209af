"""The component image reference: repository from config, tag from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components.errors import UserError
from pipeline.config import PipelineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


class ImageTagError(UserError, ValueError):
    """No image tag was configured and none can be derived from git."""


def _git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise ImageTagError(
            f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip() or result.stdout}"
        )
    return result.stdout.strip()


def git_revision_tag(cwd: Path = REPO_ROOT) -> str:
    """Short commit sha, `-dirty` when tracked files differ from it.

    A dirty tag marks an image that no commit reproduces; CI builds from a
    clean checkout, so its tags are plain shas.

    Raises:
        ImageTagError: `cwd` is not in a git checkout, or it has no commit.
    """
    sha = _git("rev-parse", "--short=12", "HEAD", cwd=cwd)
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return f"{sha}-dirty" if dirty else sha


def image_reference(config: PipelineConfig, cwd: Path = REPO_ROOT) -> str:
    """`<kubeflow.image>:<tag>`, the tag being kubeflow.image_tag or the git revision."""
    tag = config.kubeflow.image_tag or git_revision_tag(cwd)
    return f"{config.kubeflow.image}:{tag}"
