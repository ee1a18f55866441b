"""Wire forms of deployments, their traffic controls, shadow comparisons and clusters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["rolling", "blue_green", "canary", "shadow"]
Metric = Literal["in_flight", "rps", "p50_latency_ms"]


class StrategyParams(BaseModel):
    """How a rollout proceeds. Canary: `steps` (percentages, rising, ending at 100) every
    `interval_seconds`, or by hand (no steps: the canary starts at `weight`); automatic
    rollback when, over the last `window_seconds` and at least `min_requests` requests,
    the canary's error rate exceeds `max_error_rate` or its p99 latency `max_p99_ms`."""

    model_config = ConfigDict(extra="forbid")
    steps: list[int] | None = Field(default=None, max_length=20)
    interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    weight: int = Field(default=10, ge=0, le=100, description="First canary weight by hand")
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    window_seconds: float = Field(default=60.0, gt=0, le=3600)
    min_requests: int = Field(default=20, ge=1)
    canary_replicas: int = Field(default=1, ge=1, le=100)
    ready_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _steps_rise(self) -> Self:
        if self.steps is not None:
            if not self.steps or any(not 1 <= s <= 100 for s in self.steps):
                raise ValueError("steps: percentages between 1 and 100")
            if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
                raise ValueError("steps must rise")
        return self


class Autoscaling(BaseModel):
    """Scale between the replica bounds so that `metric` stays near `target`: requests in
    flight per replica, requests per second per replica, or p50 latency in ms."""

    model_config = ConfigDict(extra="forbid")
    metric: Metric
    target: float = Field(gt=0)
    scale_up_cooldown_seconds: float = Field(default=15.0, ge=0, le=3600)
    scale_down_cooldown_seconds: float = Field(default=60.0, ge=0, le=86_400)
    #: With ``replicas_min`` 0: stop the last replica after this long without requests.
    scale_to_zero_after_seconds: float = Field(default=300.0, gt=0, le=86_400)


class DeploymentCreate(BaseModel):
    """Deploy a model version (by number or alias) to a target with a strategy."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100)
    model: str = Field(min_length=1, max_length=250, description="Model id or name")
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, min_length=1, max_length=100)
    target: str = Field(default="local", min_length=1, max_length=100)
    strategy: Strategy = "rolling"
    strategy_params: StrategyParams = Field(default_factory=StrategyParams)
    replicas_min: int = Field(default=1, ge=0, le=100)
    replicas_max: int | None = Field(default=None, ge=1, le=100)
    autoscaling: Autoscaling | None = None
    environment: str = Field(default="", max_length=40)
    image: str | None = Field(
        default=None, max_length=500, description="Kubernetes targets: the container image"
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of version and alias")
        if self.replicas_max is not None and self.replicas_max < self.replicas_min:
            raise ValueError("replicas_max must be at least replicas_min")
        return self


class DeploymentUpdate(BaseModel):
    """Change a deployment: a new version rolls out with the strategy; bounds and
    autoscaling apply at once."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, min_length=1, max_length=100)
    strategy: Strategy | None = None
    strategy_params: StrategyParams | None = None
    replicas_min: int | None = Field(default=None, ge=0, le=100)
    replicas_max: int | None = Field(default=None, ge=1, le=100)
    autoscaling: Autoscaling | None = None
    image: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self


class TrafficSet(BaseModel):
    """Set the canary's share of the traffic by hand (percent)."""

    model_config = ConfigDict(extra="forbid")
    weight: int = Field(ge=0, le=100)


class ReplicaOut(BaseModel):
    """One model-server process of a revision."""

    id: str
    url: str
    port: int
    pid: int
    state: str
    in_flight: int


class RevisionOut(BaseModel):
    """A version inside a deployment, its role, traffic share and replicas."""

    id: str
    version: int
    version_id: str
    role: str
    weight: int
    replicas: int
    status: str
    message: str
    instances: list[ReplicaOut]
    created_at: datetime


class DeploymentOut(BaseModel):
    """A deployment: its desired state, the revisions it serves and their health."""

    id: str
    name: str
    model_id: str
    model_name: str
    target: str
    strategy: str
    strategy_params: dict[str, Any]
    environment: str
    status: str
    message: str
    replicas_min: int
    replicas_max: int
    autoscaling: dict[str, Any] | None
    traffic: dict[str, int] = Field(description="Version number -> percent of the traffic")
    revisions: list[RevisionOut]
    manifests: list[dict[str, Any]]
    applied: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class LatencyOut(BaseModel):
    """Latency percentiles in milliseconds."""

    p50: float | None
    p99: float | None


class ShadowOut(BaseModel):
    """The shadow version against the serving one over the mirrored requests kept."""

    shadow_version: int | None
    requests: int
    rows: int
    shadow_errors: int
    agreement_rate: float | None
    mean_abs_diff: float | None
    latency_ms: dict[str, LatencyOut]


class ClusterOut(BaseModel):
    """A deployment target and its capacity (what is known of it)."""

    name: str
    kind: Literal["local", "kubernetes"]
    protected: bool
    api_url: str | None = None
    namespace: str | None = None
    configured: bool = Field(description="Kubernetes: whether an API server URL is set")
    capacity: dict[str, Any]
