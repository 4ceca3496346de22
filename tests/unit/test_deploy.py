"""deploy/ (issue 23 item 5): the Kubernetes manifests against the API's own schemas
(kubernetes-validate, strict: an unknown or misspelt field fails), and what both the
manifests and the compose file must keep saying about inboxwatch's replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def manifests() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "inboxwatch.yaml").read_text())
    return {doc["kind"]: doc for doc in docs}


def test_the_kubernetes_manifests_are_valid_for_the_api():
    for doc in manifests().values():
        kubernetes_validate.validate(doc, "1.31", strict=True)  # raises on any error


def test_replicas_probe_the_service_and_a_budget_keeps_two_running():
    found = manifests()
    deployment, budget = found["Deployment"], found["PodDisruptionBudget"]
    assert deployment["spec"]["replicas"] == 3 and budget["spec"]["maxUnavailable"] == 1
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == 9108
    [url] = [e for e in container["env"] if e["name"] == "INBOXWATCH_STATE__URL"]
    assert "secretKeyRef" in url["valueFrom"]  # the database's password is never literal
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user


def test_the_compose_file_runs_three_replicas_on_a_healthy_postgres():
    compose = yaml.safe_load((DEPLOY / "compose.postgres.yaml").read_text())
    service = compose["services"]["inboxwatch"]
    assert service["deploy"]["replicas"] == 3
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["postgres"]
    used = {s for each in compose["services"].values() for s in each.get("secrets", [])}
    assert used == set(compose["secrets"])  # every secret defined, none unused
    assert (DEPLOY / service["build"] / "Dockerfile").is_file()
