"""Kubernetes manifests: render, assert the contract, schema-validate, checkov."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.moderation.redis_config import load_redis_config
from services.moderation.settings import load_prefix
from shared.config import Env

from .support import (
    K8S,
    REPO,
    Rendered,
    Tools,
    kustomize,
    load_docs,
)

IMAGE = "ghcr.io/authgate/authgate:0.1.0"
SECRET_DIR = "/run/secrets/authgate"

# name -> what each Deployment must look like
SERVICES: dict[str, dict[str, Any]] = {
    "authgate-auth": {
        "container": "auth",
        "command": ["python", "-m", "services.auth"],
        "http": 3080,
        "management": 9080,
        "host_var": "AUTH_HOST",
        "secret_files": {
            "JWT_SECRET_FILE",
            "JWT_REFRESH_SECRET_FILE",
            "TOTP_ENCRYPTION_KEY_FILE",
            "MONGO_URI_FILE",
            "MODERATION_API_KEY_FILE",
            "AUTH_SERVICE_KEYS_FILE",
        },
    },
    "authgate-moderation": {
        "container": "moderation",
        "command": ["python", "-m", "services.moderation"],
        "http": 3081,
        "management": 9081,
        "host_var": "MODERATION_HOST",
        "secret_files": {"MODERATION_API_KEYS_FILE"},
    },
}
NAMESPACED_KINDS = {
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Secret",
}


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, "one container per pod"
    result: dict[str, Any] = containers[0]
    return result


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(deployment).get("env", [])}


def cpu_millis(value: str | int) -> float:
    text = str(value)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def mem_bytes(value: str | int) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# ---- rendering and inventory -------------------------------------------------------


def test_base_renders_every_resource(base: Rendered) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in base.docs}
    expected = {
        ("Deployment", "authgate-auth"),
        ("Deployment", "authgate-moderation"),
        ("Service", "authgate-auth"),
        ("Service", "authgate-auth-metrics"),
        ("Service", "authgate-moderation"),
        ("Service", "authgate-moderation-metrics"),
        ("ConfigMap", "authgate-config"),
        ("HorizontalPodAutoscaler", "authgate-auth"),
        ("HorizontalPodAutoscaler", "authgate-moderation"),
        ("PodDisruptionBudget", "authgate-auth"),
        ("PodDisruptionBudget", "authgate-moderation"),
        ("ServiceAccount", "authgate-auth"),
        ("ServiceAccount", "authgate-moderation"),
    }
    assert expected <= kinds, f"missing: {expected - kinds}"
    assert len(base.of_kind("NetworkPolicy")) >= 3


def test_base_is_namespace_agnostic(base: Rendered) -> None:
    with_ns = [d["metadata"]["name"] for d in base.docs if "namespace" in d["metadata"]]
    assert with_ns == [], "the base sets no namespace; overlays or `-n` do"
    assert base.of_kind("Namespace") == []


def test_base_contains_no_secret(base: Rendered) -> None:
    assert base.of_kind("Secret") == [], "the real Secret is created out of band"
    text = base.path.read_text()
    assert "REPLACE_ME" not in text
    assert "secretKeyRef" not in text, "secrets are files, never env values"
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    assert "secretGenerator" not in kustomization


def test_secret_example_has_placeholders_for_every_mounted_key(base: Rendered) -> None:
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "authgate-secrets"
    data = secret["stringData"]
    for key, value in data.items():
        assert "REPLACE_ME" in value, f"{key} must hold a placeholder, not a value"
    mounted = {
        item["key"]
        for deployment in base.of_kind("Deployment")
        for volume in pod_spec(deployment)["volumes"]
        if "secret" in volume
        for item in volume["secret"]["items"]
    }
    assert mounted <= set(data), f"template lacks {mounted - set(data)}"


# ---- Deployments -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_deployment_shape(base: Rendered, name: str) -> None:
    want = SERVICES[name]
    deployment = base.get("Deployment", name)
    c = container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert c["name"] == want["container"]
    assert c["image"] == IMAGE
    assert not c["image"].endswith(":latest")
    assert c["command"] == want["command"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": want["http"], "management": want["management"]}
    env = env_of(deployment)
    assert env["AUTHGATE_ENV"] == "production"
    assert env[want["host_var"]] == "0.0.0.0"
    assert {"configMapRef": {"name": "authgate-config"}} in c["envFrom"]
    # The pod template's labels are what the Services, PDBs and policies select.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == name
    assert deployment["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_deployment_security_context(base: Rendered, name: str) -> None:
    deployment = base.get("Deployment", name)
    pod = pod_spec(deployment)
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == name
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(deployment)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs a writable /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    sa = base.get("ServiceAccount", name)
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_deployment_resources_and_probes(base: Rendered, name: str) -> None:
    c = container(base.get("Deployment", name))
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{bound} need cpu and memory"
    assert cpu_millis(c["resources"]["requests"]["cpu"]) <= cpu_millis(c["resources"]["limits"]["cpu"])
    assert mem_bytes(c["resources"]["requests"]["memory"]) <= mem_bytes(c["resources"]["limits"]["memory"])
    port_names = {p["name"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_secrets_are_files_from_the_secret_volume(base: Rendered, name: str) -> None:
    deployment = base.get("Deployment", name)
    env = env_of(deployment)
    file_vars = {k for k in env if k.endswith("_FILE")}
    assert file_vars == SERVICES[name]["secret_files"]
    secret_volumes = [v for v in pod_spec(deployment)["volumes"] if "secret" in v]
    assert len(secret_volumes) == 1
    volume = secret_volumes[0]
    assert volume["secret"]["secretName"] == "authgate-secrets"
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == SECRET_DIR
    assert mount["readOnly"] is True
    item_paths = {item["path"] for item in volume["secret"]["items"]}
    for var in file_vars:
        path = Path(env[var])
        assert str(path.parent) == SECRET_DIR
        assert path.name in item_paths, f"{var} points at a file that is not mounted"
        assert path.name == var.removesuffix("_FILE"), "key named like the variable"
    # Least privilege: the pod mounts exactly the files it reads.
    assert item_paths == {Path(env[v]).name for v in file_vars}
    # No secret values in plain env either.
    for var, value in env.items():
        if any(word in var for word in ("SECRET", "PASSWORD", "API_KEY", "SERVICE_KEYS", "MONGO_URI")):
            assert var.endswith("_FILE"), f"{var}={value!r} should be a file"


# ---- ConfigMap, Services, HPA, PDB -------------------------------------------------


def test_configmap(base: Rendered) -> None:
    data = base.get("ConfigMap", "authgate-config")["data"]
    assert data["TRUST_PROXY"] == "1"
    assert data["TRUSTED_PROXIES"]
    assert data["REDIS_URI"] == "redis://redis:6379/0"
    assert data["MODERATION_URL"] == "http://authgate-moderation:3081"
    assert data["MODERATION_REPLICAS_SHARED"] == "true"
    assert "ALLOW_REGISTRATION" in data
    assert data["MONGO_WRITE_CONCERN"] == "majority"
    assert data["USE_REDIS_CLUSTER"] == "false"
    assert data["REDIS_KEY_PREFIX"] == "mod"
    for key, value in data.items():
        assert not re.search(r"SECRET|PASSWORD|_KEYS?$", key), f"{key} belongs in the Secret"
        assert not re.search(r"://[^/@]*:[^/@]*@", value), f"{key} carries credentials"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_services_split_public_and_management(base: Rendered, name: str) -> None:
    want = SERVICES[name]
    public = base.get("Service", name)
    assert public["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in public["spec"]["ports"]] == [want["http"]]
    assert public["spec"]["selector"] == {"app.kubernetes.io/name": name}
    metrics = base.get("Service", f"{name}-metrics")
    assert [p["port"] for p in metrics["spec"]["ports"]] == [want["management"]]
    assert metrics["spec"]["selector"] == {"app.kubernetes.io/name": name}
    annotations = metrics["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(want["management"])
    assert annotations["prometheus.io/path"] == "/metrics"
    # No Service of this app exposes the management port except the metrics one.
    for service in base.of_kind("Service"):
        if service["metadata"]["name"] != f"{name}-metrics" and service["spec"]["selector"] == {
            "app.kubernetes.io/name": name
        }:
            assert want["management"] not in [p["port"] for p in service["spec"]["ports"]]
    pod_annotations = base.get("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/port"] == str(want["management"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_hpa_and_pdb(base: Rendered, name: str) -> None:
    hpa = base.get("HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = base.get("PodDisruptionBudget", name)
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


# ---- NetworkPolicies ---------------------------------------------------------------


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_default_deny_ingress(base: Rendered) -> None:
    deny = [
        np
        for np in base.of_kind("NetworkPolicy")
        if np["spec"]["podSelector"] == {} and np["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert len(deny) == 1
    assert not deny[0]["spec"].get("ingress"), "default deny has no allow rule"


def _policy_for(base: Rendered, name: str) -> dict[str, Any]:
    matches = [
        np
        for np in base.of_kind("NetworkPolicy")
        if np["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": name}
    ]
    assert len(matches) == 1, f"one policy selects {name}"
    return matches[0]


def test_auth_network_policy(base: Rendered) -> None:
    spec = _policy_for(base, "authgate-auth")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    by_port = {p["port"]: rule for rule in spec["ingress"] for p in rule["ports"]}
    assert set(by_port) == {3080, 9080}
    ingress_from = by_port[3080]["from"]
    assert all("namespaceSelector" in peer for peer in ingress_from)
    assert _ports(spec["egress"]) == {3081, 27017, 53}
    to_moderation = next(r for r in spec["egress"] if _ports([r]) == {3081})
    assert to_moderation["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "authgate-moderation"}}}
    ]


def test_moderation_network_policy(base: Rendered) -> None:
    spec = _policy_for(base, "authgate-moderation")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    public = [r for r in spec["ingress"] if _ports([r]) == {3081}]
    assert len(public) == 1
    # Only auth pods and explicitly labelled callers, in this namespace.
    assert public[0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "authgate-auth"}}},
        {"podSelector": {"matchLabels": {"authgate.io/moderation-client": "true"}}},
    ]
    assert _ports(spec["ingress"]) == {3081, 9081}
    assert _ports(spec["egress"]) == {6379, 53}


# ---- dev overlay and the redis-password component ----------------------------------


def test_dev_overlay(base: Rendered, dev: Rendered) -> None:
    for doc in dev.docs:
        if doc["kind"] in NAMESPACED_KINDS:
            assert doc["metadata"].get("namespace") == "authgate-dev", doc["metadata"]["name"]
    assert dev.of_kind("PodDisruptionBudget") == [], "no PDB with a single replica"
    for name in SERVICES:
        deployment = dev.get("Deployment", name)
        assert deployment["spec"]["replicas"] == 1
        assert env_of(deployment)["AUTHGATE_ENV"] == "production"
        assert (
            container(deployment)["securityContext"]
            == container(base.get("Deployment", name))["securityContext"]
        )
        small = container(deployment)["resources"]
        big = container(base.get("Deployment", name))["resources"]
        assert cpu_millis(small["limits"]["cpu"]) < cpu_millis(big["limits"]["cpu"])
        assert mem_bytes(small["limits"]["memory"]) < mem_bytes(big["limits"]["memory"])
        assert dev.get("HorizontalPodAutoscaler", name)["spec"]["minReplicas"] == 1


def test_redis_password_component(tools: Tools) -> None:
    docs = load_docs(kustomize(tools, REPO / "tests" / "deploy" / "fixtures" / "redis-password"))
    rendered = Rendered(name="redis-password", path=Path("-"), docs=docs)
    assert "REDIS_URI" not in rendered.get("ConfigMap", "authgate-config")["data"]
    moderation = rendered.get("Deployment", "authgate-moderation")
    assert env_of(moderation)["REDIS_URI_FILE"] == f"{SECRET_DIR}/REDIS_URI"
    volume = next(v for v in pod_spec(moderation)["volumes"] if "secret" in v)
    assert {"key": "REDIS_URI", "path": "REDIS_URI"} in volume["secret"]["items"]
    assert "REDIS_URI_FILE" not in env_of(rendered.get("Deployment", "authgate-auth"))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_replicas_spread_over_nodes_and_zones(base: Rendered, name: str) -> None:
    constraints = pod_spec(base.get("Deployment", name))["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"  # never blocks a rollout
        assert constraint["maxSkew"] == 1


def test_redis_cluster_component(redis_cluster_render: Rendered, tmp_path: Path) -> None:
    """Every cluster variable is there, secrets as files; moderation's loader accepts the result."""
    rendered = redis_cluster_render
    data = rendered.get("ConfigMap", "authgate-config")["data"]
    assert data["USE_REDIS_CLUSTER"] == "true"
    assert len(data["REDIS_URI"].split(",")) == 3
    assert all(uri.startswith("rediss://") for uri in data["REDIS_URI"].split(","))
    moderation = rendered.get("Deployment", "authgate-moderation")
    env = env_of(moderation)
    assert env["REDIS_USERNAME_FILE"] == f"{SECRET_DIR}/REDIS_USERNAME"
    assert env["REDIS_PASSWORD_FILE"] == f"{SECRET_DIR}/REDIS_PASSWORD"
    volumes = {v["name"]: v for v in pod_spec(moderation)["volumes"]}
    items = volumes["secrets"]["secret"]["items"]
    assert {"key": "REDIS_USERNAME", "path": "REDIS_USERNAME"} in items
    assert {"key": "REDIS_PASSWORD", "path": "REDIS_PASSWORD"} in items
    assert volumes["redis-ca"]["secret"]["secretName"] == "authgate-redis-ca"
    mounts = {m["name"]: m for m in container(moderation)["volumeMounts"]}
    assert mounts["redis-ca"]["readOnly"] is True
    assert data["REDIS_CA"] == f"{mounts['redis-ca']['mountPath']}/ca.crt"
    auth_env = env_of(rendered.get("Deployment", "authgate-auth"))
    assert not {k for k in auth_env if k.startswith("REDIS")}, "auth never sees Redis"

    # What moderation would read, with the mounted files stood in by local ones.
    def local(path: str) -> str:
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text({"REDIS_USERNAME": "authgate", "REDIS_PASSWORD": "pw"}.get(target.name, "CA"))
        return str(target)

    variables = dict(data)
    variables["REDIS_CA"] = local(data["REDIS_CA"])
    variables.update({k: local(v) for k, v in env.items() if k.startswith("REDIS_") and k.endswith("_FILE")})
    config = load_redis_config(Env([variables]))
    assert config is not None and config.cluster and config.tls and len(config.seeds) == 3
    assert (config.username, config.password) == ("authgate", "pw")
    assert config.ca_file == variables["REDIS_CA"]
    assert load_prefix(Env([variables])) == "mod"
