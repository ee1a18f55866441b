"""MLflow's error shape on the MLflow routes: ``{"error_code": ..., "message": ...}``.

MLflow's clients read ``error_code`` to decide what happened (``set_experiment`` creates
an experiment only after ``RESOURCE_DOES_NOT_EXIST``), so these routes answer with
MLflow's codes and the HTTP statuses MLflow gives them (``mlflow/exceptions.py``,
``ERROR_CODE_TO_HTTP_STATUS``), never with Inwire's envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from inwire.kit.api import InwireRoute
from inwire.kit.errors import InwireError

log = logging.getLogger(__name__)

#: MLflow's HTTP status of each error code it uses.
STATUS: dict[str, int] = {
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_CONFLICT": 409,
    "RESOURCE_EXHAUSTED": 429,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

#: Inwire codes with an MLflow meaning of their own.
_BY_CODE: dict[str, str] = {
    "NAME_TAKEN": "RESOURCE_ALREADY_EXISTS",
    "PARAM_CHANGED": "INVALID_PARAMETER_VALUE",
    "RUN_ARCHIVED": "INVALID_PARAMETER_VALUE",
    "EXPERIMENT_ARCHIVED": "INVALID_PARAMETER_VALUE",
    "INVALID_TRANSITION": "INVALID_PARAMETER_VALUE",
    "INVALID_FILTER": "INVALID_PARAMETER_VALUE",
}
#: Otherwise, by HTTP status.
_BY_STATUS: dict[int, str] = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    413: "RESOURCE_EXHAUSTED",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class MlflowError(InwireError):
    """An error with an MLflow code of its own (``RESOURCE_DOES_NOT_EXIST``…)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message, code=error_code)
        self.status = STATUS.get(error_code, 500)  # type: ignore[misc]


def invalid(message: str) -> MlflowError:
    """``INVALID_PARAMETER_VALUE`` (400)."""
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> MlflowError:
    """``RESOURCE_DOES_NOT_EXIST`` (404)."""
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message)


def error_response(error_code: str, message: str, status: int | None = None) -> JSONResponse:
    """MLflow's error body."""
    return JSONResponse(
        {"error_code": error_code, "message": message},
        status_code=status or STATUS.get(error_code, 500),
    )


def translate(exc: InwireError) -> JSONResponse:
    """An Inwire error as MLflow's: its code mapped, its status MLflow's for that code."""
    if isinstance(exc, MlflowError):
        return error_response(exc.code, exc.message, exc.status)
    code = _BY_CODE.get(exc.code) or _BY_STATUS.get(exc.status, "INTERNAL_ERROR")
    status = STATUS[code] if code in _BY_CODE.values() else exc.status
    message = exc.message
    if exc.details and exc.status == 400:
        fields = [str(d.get("field")) for d in exc.details if d.get("field")]
        if fields and not any(f in message for f in fields):
            message = f"{message} ({', '.join(fields)})"
    return error_response(code, message, status)


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "Invalid value: " + "; ".join(parts)


class MlflowRoute(InwireRoute):
    """A route whose every failure, authentication and validation included, is MLflow's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so errors leave in MLflow's shape."""
        handler = super().get_route_handler()

        async def mlflow_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except InwireError as exc:
                return translate(exc)
            except (RequestValidationError, ValidationError) as exc:
                return error_response("INVALID_PARAMETER_VALUE", _validation_message(exc.errors()))
            except json.JSONDecodeError as exc:
                return error_response("INVALID_PARAMETER_VALUE", f"Malformed JSON body: {exc}")

        return mlflow_errors
