"""The container image recipe and the CI workflow, checked without Docker or GitHub.

No Docker engine runs here, so the image is not built in tests. What is
checked: the wheel the Dockerfile installs carries every module and data
file the compiled tasks import, and the recipe and the workflow say what
the README says they do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "kubernetes" / "image" / "Dockerfile"
WORKFLOW = REPO / ".github" / "workflows" / "pipeline.yml"


def _source_tree(into: Path) -> Path:
    """The files git would commit, copied: setuptools reuses a build/ folder it finds,
    which in a working copy can hold modules deleted since (the image builds from a
    clean context)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listed:
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_wheel_carries_what_the_compiled_tasks_import(tmp_path):
    source = _source_tree(tmp_path / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("mlops_pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "pipeline/kubeflow/entrypoint.py",
        "pipeline/configs/kubeflow.yaml",
        "pipeline/configs/config.schema.json",
        "models/taxi/schema.pbtxt",
        "models/taxi/labels.py",
        "models/declarative/preprocessing.py",
        "components/training/run.py",
        "components/trainer/executor.py",
        "components/evaluator/executor.py",
        "components/baseline/component.py",
        "components/gate/component.py",
        "components/registry/tf_serving_ops.txt",
        "pipeline/report/component.py",
    ):
        assert required in names, required
    assert not any(n.startswith("tests/") for n in names)
    assert "components/features.py" not in names  # moved to models/ with the taxi workload


def test_dockerfile_installs_the_lock_then_the_project():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.10", text, re.M)
    # The lock, less the test-only kubernetes-validate (scripts/ensure_venv.sh).
    assert "grep -v -E '^kubernetes-validate==' requirements.lock > /tmp/requirements.txt" in text
    assert "pip install --no-deps -r /tmp/requirements.txt" in text
    assert "pip install --no-deps --no-build-isolation ." in text
    assert "TF_USE_LEGACY_KERAS=1" in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_a_process_that_imports_tfx_does_not_find_kubernetes_validate():
    # Installed on the path, `kubernetes.dynamic` imports it (and jsonschema's
    # format grammars) in every task's process; the tests find it off the path.
    code = (
        "import sys, importlib.util, tfx.components; "
        "print(importlib.util.find_spec('kubernetes_validate'), "
        "sorted(m for m in ('kubernetes_validate', 'jsonschema') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    assert out == "None []", out
    from tests import kubernetes_schemas

    assert Path(kubernetes_schemas.kubernetes_validate.__file__).is_relative_to(
        kubernetes_schemas.TEST_TOOLS
    )


def test_workflow_tests_builds_compiles_submits_and_follows_the_run():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    fast = [s.get("run", "") for s in workflow["jobs"]["fast"]["steps"]]
    assert "make test-fast" in fast and "make lint" in fast
    test = workflow["jobs"]["test"]
    assert test["needs"] == "fast"
    assert "make test" in [s.get("run", "") for s in test["steps"]], "the README's test command"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test" and deploy["if"] == "github.ref == 'refs/heads/main'"
    script = "\n".join(s.get("run", "") for s in deploy["steps"])
    assert "docker build -f kubernetes/image/Dockerfile" in script
    assert "docker push" in script
    assert "python -m pipeline compile" in script and "--output pipeline.yaml" in script
    assert "python -m pipeline image" in script
    # The run is followed: a failed Kubeflow run fails the job.
    submit = re.search(r"python -m pipeline submit(.*?)(?:\n\s*\n|$)", script, re.S)
    assert submit, script
    flags = submit.group(1)
    assert "--package pipeline.yaml" in flags and "--wait" in flags and "--timeout" in flags
