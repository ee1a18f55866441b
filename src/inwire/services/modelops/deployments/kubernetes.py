"""Kubernetes targets: a deployment's Deployment and Service manifests, checked by our own
structural validation, and applied through the Kubernetes API (server-side apply) when
the cluster has an API server URL.

Only the ``rolling`` strategy runs on Kubernetes (the Deployment's own RollingUpdate);
the image is the container of a build (``/builds``) or one given by the caller.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from inwire.kit.errors import Invalid, InwireError
from inwire.services.modelops.builds.bundle import CONTAINER_PORT
from inwire.services.modelops.deployments.clusters import KubernetesCluster

#: Field manager of our server-side applies.
FIELD_MANAGER = "inwire"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


class KubernetesError(InwireError):
    """The Kubernetes API refused or failed a request (502)."""

    status = 502
    code = "KUBERNETES_ERROR"


def object_name(deployment_id: str) -> str:
    """The Kubernetes name of a deployment's objects (a DNS label)."""
    return "inwire-" + re.sub(r"[^a-z0-9-]", "-", deployment_id.lower())[:50].strip("-")


def manifests(
    *,
    deployment_id: str,
    model_name: str,
    version: int,
    image: str,
    namespace: str,
    replicas: int,
) -> list[dict[str, Any]]:
    """The Deployment and the Service serving one model version."""
    name = object_name(deployment_id)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "inwire",
        "inwire.dev/deployment": deployment_id.lower().replace("_", "-"),
    }
    pod_labels = {**labels, "inwire.dev/version": str(version)}
    probe: dict[str, Any] = {
        "httpGet": {"path": "/ready", "port": CONTAINER_PORT},
        "periodSeconds": 5,
    }
    liveness: dict[str, Any] = {
        "httpGet": {"path": "/health", "port": CONTAINER_PORT},
        "periodSeconds": 10,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"inwire.dev/model": model_name, "inwire.dev/version": str(version)},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
                            "readinessProbe": probe,
                            "livenessProbe": liveness,
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": CONTAINER_PORT}],
        },
    }
    problems = validate(deployment) + validate(service)
    if problems:
        raise Invalid(
            "The generated manifests are not valid: " + "; ".join(problems),
            details=[{"field": "image", "message": p} for p in problems],
        )
    return [deployment, service]


def _labels(where: str, labels: Any) -> list[str]:
    if not isinstance(labels, dict):
        return [f"{where} must be a map"]
    return [
        f"{where}.{k}: invalid label value {v!r}"
        for k, v in labels.items()
        if not isinstance(v, str) or not _LABEL_VALUE.match(v)
    ]


def _port(value: Any) -> bool:
    return isinstance(value, int) and 1 <= value <= 65535


def validate(obj: dict[str, Any]) -> list[str]:
    """Structural problems of a Deployment or Service manifest (empty: none found)."""
    problems: list[str] = []
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        problems.append(f"{kind}.metadata.name {name!r} is not a DNS label")
    problems += _labels(f"{kind}.metadata.labels", meta.get("labels", {}))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*problems, f"{kind}.spec is missing"]
    if kind == "Deployment" and obj.get("apiVersion") == "apps/v1":
        if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 0:
            problems.append("Deployment.spec.replicas must be a non-negative integer")
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            problems.append("Deployment.spec.selector must match the pod template's labels")
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not isinstance(containers, list) or not containers:
            problems.append("Deployment needs at least one container")
        for c in containers or []:
            if not isinstance(c.get("image"), str) or not c["image"].strip():
                problems.append(f"container {c.get('name')!r} has no image")
            elif any(ch.isspace() for ch in c["image"]):
                problems.append(f"container image {c['image']!r} contains spaces")
            if not _DNS_LABEL.match(str(c.get("name", ""))):
                problems.append(f"container name {c.get('name')!r} is not a DNS label")
            for p in c.get("ports", []):
                if not _port(p.get("containerPort")):
                    problems.append(f"container port {p.get('containerPort')!r} is not a port")
    elif kind == "Service" and obj.get("apiVersion") == "v1":
        ports = spec.get("ports")
        if not isinstance(ports, list) or not ports:
            problems.append("Service needs at least one port")
        for p in ports or []:
            if not _port(p.get("port")) or not _port(p.get("targetPort")):
                problems.append(f"Service port {p!r} is not valid")
        problems += _labels("Service.spec.selector", spec.get("selector", {}))
    else:
        problems.append(f"unsupported manifest {obj.get('apiVersion')}/{kind}")
    return problems


def _path(obj: dict[str, Any]) -> str:
    ns = obj["metadata"]["namespace"]
    name = obj["metadata"]["name"]
    if obj["kind"] == "Deployment":
        return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
    return f"/api/v1/namespaces/{ns}/services/{name}"


def _client(
    cluster: KubernetesCluster, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {}
    return httpx.AsyncClient(
        base_url=cluster.api_url.rstrip("/"),
        headers=headers,
        verify=cluster.verify_tls,
        timeout=30.0,
        transport=transport,
    )


def _raise_for(r: httpx.Response, what: str) -> None:
    if r.status_code >= 400:
        try:
            message = r.json().get("message") or r.text
        except ValueError:
            message = r.text
        raise KubernetesError(f"Kubernetes refused {what}: {r.status_code} {message[:500]}")


async def _send(
    cluster: KubernetesCluster,
    objs: list[dict[str, Any]],
    transport: httpx.AsyncBaseTransport | None,
    method: str,
) -> None:
    async with _client(cluster, transport) as client:
        for obj in objs:
            what = f"{obj['kind']} {obj['metadata']['name']}"
            try:
                if method == "PATCH":
                    r = await client.patch(
                        _path(obj),
                        params={"fieldManager": FIELD_MANAGER, "force": "true"},
                        json=obj,
                        headers={"Content-Type": "application/apply-patch+yaml"},
                    )
                else:
                    r = await client.delete(_path(obj))
            except httpx.HTTPError as exc:
                raise KubernetesError(
                    f"Kubernetes API {cluster.api_url} unreachable: {exc}"
                ) from exc
            if not (method == "DELETE" and r.status_code == 404):  # already gone is fine
                _raise_for(r, what if method == "PATCH" else f"deleting {what}")


async def apply(
    cluster: KubernetesCluster,
    objs: list[dict[str, Any]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Server-side apply each manifest (create or update) through the cluster's API."""
    await _send(cluster, objs, transport, "PATCH")


async def delete(
    cluster: KubernetesCluster,
    objs: list[dict[str, Any]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Delete the manifests' objects (an object already gone is fine)."""
    await _send(cluster, objs, transport, "DELETE")
