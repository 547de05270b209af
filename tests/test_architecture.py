"""The layering rules that keep the core generic, checked on the source itself.

- Nothing in `components/` or `pipeline/` imports a model package
  (`models.*`): the core loads the configured one by its dotted path only
  (components/model_package.py).
- Importing any module of the project writes nothing to the environment:
  entry points call `components.environment.prepare()` in their `main`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

GENERIC = ("components", "pipeline")


def _modules(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_generic_module_imports_a_model_package():
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            n for n in _imported(path) if n.split(".")[0] == "models"
        )
        for package in GENERIC
        for path in _modules(package)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_model_packages_import_the_core_not_the_other_way():
    # The check above must be able to fail: the model packages do import the core.
    imported = set().union(*(_imported(p) for p in _modules("models")))
    assert any(name.startswith("components") for name in imported)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_importing_any_module_leaves_the_environment_alone():
    modules = [
        _module_name(p)
        for package in (*GENERIC, "models")
        for p in _modules(package)
        if p.name != "__main__.py"
    ]
    # Libraries write their own variables when first imported (TensorFlow sets
    # TF2_BEHAVIOR, KMP_*...): they are imported first, so what is left is ours.
    libraries = "tensorflow, tfx.v1, tensorflow_transform, tensorflow_model_analysis, kfp"
    script = (
        f"import importlib, json, os, sys, {libraries}\n"
        "before = dict(os.environ)\n"
        "changed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "    now = dict(os.environ)\n"
        "    if now != before:\n"
        "        changed[name] = sorted(set(now.items()) ^ set(before.items()))\n"
        "        before = now\n"
        "print(json.dumps(changed))\n"
    )
    # TF_USE_LEGACY_KERAS is set for the child as an entry point would set it,
    # so that TFX imports; any further write is a module's.
    env = {"PATH": "/usr/bin:/bin", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(modules)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    changed = json.loads(done.stdout.strip().splitlines()[-1])
    assert changed == {}, changed
