"""``POST /api/v1/deployments/{id}/predict`` served as raw ASGI, before FastAPI's routing.

Predict is the data plane: every call costs the caller latency, and the issue's budget for
routing is 1 ms at p50 over calling a replica directly. Through FastAPI the endpoint spent
~0.5 ms of CPU before the model server was even asked (route matching over every route,
dependency solving, the exception middlewares), so this middleware answers the path itself:
it reads the body, authenticates the bearer token with the app's ``TokenVerifier`` (whose
cache makes a repeated token a dictionary lookup), checks ``deployments:execute`` and calls
the same ``DeploymentController.predict`` as the route. It sits inside the kit's request
context (``create_service_app(middleware=…)``), so request ids, the server span, metrics,
the access log and the body limit are the same as for any route.

Requests it does not take go on to the FastAPI route (``router.predict``), which stays the
documented endpoint: a service calling on behalf of a user (``X-Inwire-Internal``), an app
that authenticates tokens itself (``app.state.authenticate``), and every other method.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from inwire.kit.app import send_error
from inwire.kit.auth.internal import INTERNAL_HEADER
from inwire.kit.errors import Forbidden, Invalid, InwireError, Unauthorized, Unavailable
from inwire.kit.observability import org_var, principal_var

PERMISSION = "deployments:execute"
#: The route's template, as metrics and the access log name it.
TEMPLATE = "/api/v1/deployments/{deployment_id}/predict"
_PATH = re.compile(r"/api/v1/deployments/([^/]+)/predict")
_INTERNAL = INTERNAL_HEADER.lower().encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Template:
    """What ``scope["route"]`` holds for the kit's metrics (a route's ``path``)."""

    path = TEMPLATE


def parse_body(raw: bytes) -> dict[str, Any]:
    """A predict body: a JSON object (400 otherwise)."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise Invalid(
            "The body must be a JSON object", details=[{"field": "body", "message": "not JSON"}]
        ) from None
    if not isinstance(body, dict):
        raise Invalid(
            "The body must be a JSON object",
            details=[{"field": "body", "message": "not an object"}],
        )
    return body


def encode(answer: dict[str, Any]) -> bytes:
    """A predict answer as the response body."""
    return json.dumps(answer, separators=(",", ":")).encode()


class PredictFastPath:
    """Raw ASGI middleware serving predict calls that carry a bearer token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _taken(self, scope: Scope) -> tuple[str, bytes] | None:
        """The deployment id and bearer token of a predict call this path serves."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = _PATH.fullmatch(path)
        if match is None:
            return None
        state = scope["app"].state
        if getattr(state, "authenticate", None) is not None:
            return None
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
            elif name == _INTERNAL:
                return None
        return match.group(1), token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        taken = self._taken(scope)
        if taken is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _Template
        deployment_id, header = taken
        try:
            body = await _read(receive)
            answer = await self._predict(scope, deployment_id, header, body)
        except InwireError as exc:
            await send_error(send, exc)
            return
        await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
        await send({"type": "http.response.body", "body": encode(answer)})

    @staticmethod
    async def _predict(
        scope: Scope, deployment_id: str, header: bytes, raw: bytes
    ) -> dict[str, Any]:
        state = scope["app"].state
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Missing bearer credentials")
        principal = await state.verifier.verify(token.strip())
        principal_var.set(principal.subject)
        org_var.set(principal.org)
        if not principal.can(PERMISSION):
            raise Forbidden(
                f"Missing permission {PERMISSION}",
                details=[{"message": f"requires {PERMISSION}", "permission": PERMISSION}],
            )
        controller = getattr(state, "deployments", None)
        if controller is None:
            raise Unavailable("The deployments controller is not running")
        answer: dict[str, Any] = await controller.predict(
            principal.org, deployment_id, parse_body(raw)
        )
        return answer


async def _read(receive: Receive) -> bytes:
    """The whole request body (the kit's request context enforces its limit)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Invalid("The client went away before the body arrived")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
