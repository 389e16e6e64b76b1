"""deploy/kubernetes validates offline (kubernetes-validate for the core kinds, KEDA's CRD
schema for the ScaledObjects) and runs what deploy/docker-compose.yml runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KEDA_CHECK = DEPLOY / "kubernetes" / "validate" / "validate.mjs"


def documents() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_core_object_validates_against_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    core = [d for d in documents() if d["kind"] != "ScaledObject"]
    assert {d["kind"] for d in core} >= {"Deployment", "Service", "StatefulSet", "Job"}
    for document in core:
        kubernetes_validate.validate(document, version, strict=True)  # raises when invalid
    broken = {**core[0], "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def _keda(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node is needed (./dev.sh installs it)"
    return subprocess.run(
        [node, str(KEDA_CHECK), *map(str, paths)], capture_output=True, text=True, timeout=60
    )


def test_the_scaled_objects_validate_against_kedas_schema_and_a_broken_one_does_not(
    tmp_path: Path,
) -> None:
    checked = _keda()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 ScaledObject(s) checked against KEDA's schema, 0 invalid" in checked.stdout
    scaled = {d["metadata"]["name"]: d for d in documents() if d["kind"] == "ScaledObject"}
    analysis = scaled["analysis-scaler"]["spec"]
    assert analysis["scaleTargetRef"] == {"name": "analysis"}
    assert {t["metadata"]["consumerGroup"] for t in analysis["triggers"]} == {"kibitz.analysis"}
    broken = tmp_path / "broken.yaml"
    spec = {k: v for k, v in analysis.items() if k != "scaleTargetRef"}
    broken.write_text(yaml.safe_dump({**scaled["analysis-scaler"], "spec": spec}))
    refused = _keda(broken)
    assert refused.returncode == 1 and "scaleTargetRef" in refused.stderr


def test_kubernetes_runs_every_service_of_the_compose_file_the_same_way() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    kibitz = {
        name: s
        for name, s in compose.items()
        if s.get("image") == "kibitz:latest" and name != "migrate"
    }
    deployments = {d["metadata"]["name"]: d for d in documents() if d["kind"] == "Deployment"}
    for name, service in kibitz.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == service["image"], name
        assert container["command"] == service["command"], name
        assert deployments[name]["spec"]["replicas"] == service["deploy"]["replicas"], name
    config = next(d for d in documents() if d["kind"] == "ConfigMap")["data"]
    shared = compose["api"]["environment"]
    assert {k: str(v) for k, v in shared.items() if k in config} == config
    assert set(shared) - set(config) == {"KIBITZ_DATABASE_URL", "KIBITZ_API_TOKEN"}  # secrets
    kafka = compose["kafka"]["image"]
    assert any(
        c["image"] == kafka
        for d in documents()
        if d["kind"] == "StatefulSet"
        for c in d["spec"]["template"]["spec"]["containers"]
    )
