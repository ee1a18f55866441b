"""The model-server process: one model, answering predictions over HTTP.

    python -m inwire.services.modelops.serving.server --model-dir D --port P \\
        [--host 127.0.0.1] [--signature-file F] [--max-batch 64] [--batch-wait-ms 2]

The model is loaded before the port opens (a model that cannot load ends the process with
the reason on stderr). The app is a bare ASGI callable on uvicorn with uvloop and httptools,
without a framework's routing and validation layers on the hot path.

- ``GET /health``: the process is up; ``GET /ready``: it answers predictions;
- ``POST /predict`` (and MLflow's ``POST /invocations``): ``{"inputs": [{...}, ...]}`` or an
  MLflow scoring body (see ``payload.py``) -> ``{"predictions": [...]}``; inputs breaking
  the signature -> 400 ``INVALID_INPUT`` naming the field; concurrent requests share model
  calls (``batching.py``);
- ``GET /metadata``: flavor, signature, batching settings;
- ``GET /metrics``: Prometheus text: requests by status, errors, latency, batch sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inwire.kit.errors import InwireError
from inwire.services.modelops.serving.batching import Batcher
from inwire.services.modelops.serving.flavors import (
    ModelLoadError,
    ServedModel,
    default_signature,
    load_model,
)
from inwire.services.modelops.serving.payload import rows_from_body
from inwire.services.modelops.serving.validate import (
    INVALID_INPUT,
    named_columns,
    validate_inputs,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Largest request body accepted.
MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON = [(b"content-type", b"application/json")]
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(status: int, code: str, message: str, details: list[Any] | None = None) -> bytes:
    return _dumps({"error": {"code": code, "message": message, "details": details or []}})


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "inwire_model_requests",
            "Prediction requests answered, by status",
            ["status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "inwire_model_errors", "Prediction requests that failed", registry=self.registry
        )
        self.latency = Histogram(
            "inwire_model_request_duration_seconds",
            "Prediction request latency, body read to response",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.batch_requests = Histogram(
            "inwire_model_batch_requests",
            "Requests answered by one model call",
            registry=self.registry,
            buckets=_BATCH_BUCKETS,
        )
        self.batch_rows = Histogram(
            "inwire_model_batch_rows",
            "Rows given to one model call",
            registry=self.registry,
            buckets=_BATCH_BUCKETS,
        )
        self.predict_seconds = Histogram(
            "inwire_model_predict_duration_seconds",
            "Time of one model call",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "inwire_model_requests_in_flight",
            "Prediction requests being answered",
            registry=self.registry,
        )
        self._by_status: dict[int, Any] = {}

    def request(self, status: int, started: float) -> None:
        """Record one answered prediction request."""
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self.requests.labels(str(status))
        counter.inc()
        if status >= 400:
            self.errors.inc()
        self.latency.observe(time.perf_counter() - started)

    def batch(self, requests: int, rows: int, seconds: float) -> None:
        """Record one model call."""
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)
        self.predict_seconds.observe(seconds)


class ModelServer:
    """The ASGI app serving one loaded model."""

    def __init__(
        self,
        model: ServedModel,
        signature: dict[str, Any] | None,
        *,
        max_batch: int = 64,
        batch_wait_ms: float = 2.0,
        model_dir: str = "",
    ) -> None:
        self.model = model
        self.signature = signature
        self.metrics = ServerMetrics()
        self.batcher = Batcher(
            model.predict,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            on_batch=self.metrics.batch,
        )
        checked = named_columns(signature)
        self._columns = [c["name"] for c in checked] if checked else None
        self._metadata = _dumps(
            {
                "flavor": model.flavor,
                "signature": signature,
                "model_dir": model_dir,
                "max_batch": max_batch,
                "batch_wait_ms": batch_wait_ms,
                "pid": os.getpid(),
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.batcher.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.batcher.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path in ("/predict", "/invocations"):
            if method != "POST":
                await _respond(send, 405, _error(405, "METHOD_NOT_ALLOWED", "Use POST"))
                return
            await self._predict(scope, receive, send)
        elif path in ("/health", "/ready", "/ping") and method in ("GET", "HEAD"):
            status = b"ok" if path != "/ready" else b"ready"
            await _respond(send, 200, b'{"status":"' + status + b'"}')
        elif path == "/metadata" and method == "GET":
            await _respond(send, 200, self._metadata)
        elif path == "/metrics" and method == "GET":
            text = generate_latest(self.metrics.registry)
            await _respond(send, 200, text, [(b"content-type", b"text/plain; version=0.0.4")])
        else:
            await _respond(send, 404, _error(404, "NOT_FOUND", f"No route {method} {path}"))

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        status = 200
        try:
            status, body = await self._answer(scope, receive)
            await _respond(send, status, body)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.request(status, started)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        for name, value in scope["headers"]:
            if name == b"content-type" and not value.startswith(b"application/json"):
                return 415, _error(
                    415, "UNSUPPORTED_MEDIA_TYPE", "Send the inputs as application/json"
                )
        raw = await _read_body(receive)
        if raw is None:
            return 413, _error(413, "PAYLOAD_TOO_LARGE", f"At most {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return 400, _error(400, INVALID_INPUT, f"The body is not JSON: {exc}", [])
        try:
            rows = validate_inputs(self.signature, rows_from_body(body, self._columns))
        except InwireError as exc:
            return exc.status, _dumps(exc.body())
        try:
            predictions = await self.batcher.predict(rows)
        except (ValueError, TypeError, KeyError) as exc:
            message = f"The model could not predict these inputs: {type(exc).__name__}: {exc}"
            return 400, _error(400, INVALID_INPUT, message)
        except Exception as exc:
            return 500, _error(500, "MODEL_ERROR", f"The model failed: {type(exc).__name__}")
        return 200, b'{"predictions":' + _dumps(predictions) + b"}"


async def _read_body(receive: Receive) -> bytes | None:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(headers or _JSON),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_server(
    model_dir: Path,
    *,
    signature_file: Path | None = None,
    max_batch: int = 64,
    batch_wait_ms: float = 2.0,
) -> ModelServer:
    """Load the model in ``model_dir`` and the app serving it."""
    if signature_file is not None:
        signature = json.loads(signature_file.read_text()) or None
    else:
        signature = default_signature(model_dir)
    model = load_model(model_dir, signature)
    return ModelServer(
        model,
        signature,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        model_dir=str(model_dir),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inwire-model-server", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--signature-file", type=Path)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Load the model and serve it until SIGTERM/SIGINT."""
    args = _parser().parse_args(argv)
    try:
        app = build_server(
            args.model_dir,
            signature_file=args.signature_file,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
        )
    except (ModelLoadError, OSError, ValueError) as exc:
        sys.stderr.write(f"inwire model server: cannot load {args.model_dir}: {exc}\n")
        return 2
    import uvicorn

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
    )
    sys.stderr.write(
        f"inwire model server: {app.model.flavor} model from {args.model_dir} "
        f"on {args.host}:{args.port} (pid {os.getpid()})\n"
    )
    sys.stderr.flush()
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
