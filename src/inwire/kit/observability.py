"""Structured JSON logs, Prometheus metrics and OpenTelemetry traces for every service.

Context (request id, trace id, principal, organization) lives in context variables so that
every log line of a request carries it without passing it around.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: ContextVar[str | None] = ContextVar("inwire_request_id", default=None)
principal_var: ContextVar[str | None] = ContextVar("inwire_principal", default=None)
org_var: ContextVar[str | None] = ContextVar("inwire_org", default=None)

_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request's context and any ``extra=`` fields."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            out["service"] = self.service
        for key, var in (
            ("request_id", request_id_var),
            ("principal", principal_var),
            ("org", org_var),
        ):
            value = var.get()
            if value:
                out[key] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Send the root logger to stderr as JSON lines (or plain text for local debugging)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service)
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.set_name("inwire")
    for old in [h for h in root.handlers if h.get_name() == "inwire"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True


_provider_set = False


def configure_tracing(service: str) -> trace.Tracer:
    """Install a tracer provider once per process; spans stay local unless an exporter is set."""
    global _provider_set
    if not _provider_set and not isinstance(trace.get_tracer_provider(), TracerProvider):
        from opentelemetry.sdk.resources import Resource

        trace.set_tracer_provider(
            TracerProvider(resource=Resource.create({"service.name": f"inwire-{service}"}))
        )
        _provider_set = True
    return trace.get_tracer(f"inwire.{service}")


class ServiceMetrics:
    """The Prometheus metrics every service exposes, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "inwire_http_requests",
            "HTTP requests handled",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "inwire_http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = Gauge(
            "inwire_http_requests_in_flight",
            "HTTP requests being handled",
            ["service"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "inwire_jobs",
            "Jobs by type and status",
            ["service", "type", "status"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        """Record one finished request."""
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.latency.labels(self.service, method, route).observe(time.perf_counter() - started)
