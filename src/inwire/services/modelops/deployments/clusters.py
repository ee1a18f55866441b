"""Deployment targets: ``local`` (model servers on this machine) and the Kubernetes
clusters of the ``deployment_clusters`` setting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inwire.kit.errors import Invalid, NotFound
from inwire.services.modelops.settings import ModelOpsSettings

LOCAL = "local"


class KubernetesCluster(BaseModel):
    """One configured Kubernetes target."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    api_url: str = ""
    namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    token: str = ""
    protected: bool = False
    verify_tls: bool = True
    max_replicas: int = Field(default=100, ge=1)


@dataclass(frozen=True)
class Target:
    """A deployment target: the local machine or a Kubernetes cluster."""

    name: str
    kind: str  # "local" | "kubernetes"
    protected: bool
    cluster: KubernetesCluster | None = None


def kubernetes_clusters(settings: ModelOpsSettings) -> list[KubernetesCluster]:
    """The configured clusters; a bad entry is a configuration error naming it."""
    out: list[KubernetesCluster] = []
    for i, raw in enumerate(settings.deployment_clusters):
        try:
            cluster = KubernetesCluster.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"deployment_clusters[{i}] is invalid: {exc}") from exc
        if cluster.name == LOCAL:
            raise ValueError("deployment_clusters: the name 'local' is the local target's")
        out.append(cluster)
    return out


def targets(settings: ModelOpsSettings) -> list[Target]:
    """Every target, ``local`` first."""
    local = Target(LOCAL, "local", settings.deployment_local_protected)
    return [local] + [
        Target(c.name, "kubernetes", c.protected, c) for c in kubernetes_clusters(settings)
    ]


def target(settings: ModelOpsSettings, name: str) -> Target:
    """The target called ``name``; 400 naming ``target`` when there is none."""
    for t in targets(settings):
        if t.name == name:
            return t
    raise Invalid(
        f"No deployment target called {name!r}",
        details=[{"field": "target", "message": "not a configured target"}],
    )


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def describe(settings: ModelOpsSettings, running_local: int) -> list[dict[str, Any]]:
    """The targets as ``/clusters`` shows them (``running_local``: replicas running here)."""
    out: list[dict[str, Any]] = []
    for t in targets(settings):
        if t.cluster is None:
            out.append(
                {
                    "name": t.name,
                    "kind": "local",
                    "protected": t.protected,
                    "configured": True,
                    "capacity": {
                        "cpus": os.cpu_count(),
                        "memory_bytes": _memory_bytes(),
                        "replicas_running": running_local,
                        "max_replicas": settings.deployment_max_local_replicas,
                    },
                }
            )
        else:
            out.append(
                {
                    "name": t.name,
                    "kind": "kubernetes",
                    "protected": t.protected,
                    "api_url": t.cluster.api_url or None,
                    "namespace": t.cluster.namespace,
                    "configured": bool(t.cluster.api_url),
                    "capacity": {"max_replicas": t.cluster.max_replicas},
                }
            )
    return out


def one(settings: ModelOpsSettings, name: str, running_local: int) -> dict[str, Any]:
    """One target as ``/clusters/{name}`` shows it; 404 when unknown."""
    for item in describe(settings, running_local):
        if item["name"] == name:
            return item
    raise NotFound(f"Cluster {name!r} not found")
