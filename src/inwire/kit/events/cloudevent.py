"""The CloudEvents 1.0 envelope every Inwire domain event travels in.

Attributes follow the CloudEvents 1.0 specification (github.com/cloudevents/spec, v1.0.2);
the wire form is its JSON event format in structured mode: one JSON object holding the
context attributes and ``data`` (or ``data_base64`` for bytes). ``inwireorg`` is an
extension attribute carrying the owning organization's id; ``traceparent`` is the
Distributed Tracing extension (W3C Trace Context), filled by the outbox from the current
span so that consumers can continue the producer's trace.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inwire.kit.ids import new_id

#: Event types are dot-separated tokens, e.g. ``inwire.core.user.created``; the same
#: tokens make valid NATS subjects and Redis field values.
TYPE_PATTERN = r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*"
_TYPE_RE = re.compile(rf"^{TYPE_PATTERN}$")
# CloudEvents 1.0 §"Attribute Naming Convention": lower-case ASCII letters and digits.
_EXTENSION_RE = re.compile(r"^[a-z0-9]{1,20}$")


def _new_event_id() -> str:
    return new_id("evt")


def _now() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """``value`` in UTC as RFC 3339 with a ``Z`` suffix, e.g. ``2024-05-01T12:00:00.123456Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CloudEvent(BaseModel):
    """One domain event in CloudEvents 1.0 form; immutable.

    ``CloudEvent(source="/inwire/core", type="inwire.core.user.created", subject=user_id,
    data={...}, inwireorg=org_id)`` fills ``id`` (``evt_<ULID>``, so ids sort by time) and
    ``time`` (now, UTC). ``data`` is any JSON value, a pydantic model (dumped in JSON mode)
    or ``bytes`` (sent as ``data_base64``). Unknown extension attributes read from the wire
    are kept and written back unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=_new_event_id, min_length=1)
    source: str = Field(min_length=1)
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=_now)
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    data: Any = None
    inwireorg: str | None = None
    traceparent: str | None = None

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        if not _TYPE_RE.match(value):
            raise ValueError(
                "type must be dot-separated tokens of letters, digits, '_' or '-', "
                "e.g. 'inwire.core.user.created'"
            )
        return value

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        return value.astimezone(UTC)

    @field_validator("data", mode="before")
    @classmethod
    def _dump_models(cls, value: Any) -> Any:
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value

    @model_validator(mode="after")
    def _check_extensions(self) -> Self:
        for name in self.model_extra or {}:
            if not _EXTENSION_RE.match(name):
                raise ValueError(f"extension attribute {name!r} must be 1-20 of [a-z0-9]")
        return self

    @property
    def extensions(self) -> dict[str, Any]:
        """Extension attributes other than ``inwireorg`` and ``traceparent``."""
        return dict(self.model_extra or {})

    # -- structured-mode JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object of the CloudEvents JSON format (absent means None)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": rfc3339(self.time),
        }
        for name in ("subject", "datacontenttype", "dataschema", "inwireorg", "traceparent"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extensions)
        if isinstance(self.data, bytes | bytearray):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self) -> str:
        """Compact structured-mode JSON; raises ``TypeError`` if ``data`` is not JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CloudEvent:
        """Read a structured-mode JSON object; raises ``ValueError`` if it is not a valid event."""
        body = dict(body)
        if "data_base64" in body:
            if "data" in body:
                raise ValueError("an event has either data or data_base64, not both")
            body["data"] = base64.b64decode(body.pop("data_base64"), validate=True)
        if body.get("specversion") != "1.0":
            raise ValueError(f"unsupported CloudEvents specversion {body.get('specversion')!r}")
        return cls.model_validate(body)

    @classmethod
    def from_json(cls, text: str | bytes) -> CloudEvent:
        """Parse structured-mode JSON text (as written by :meth:`to_json`)."""
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError("a structured CloudEvent is a JSON object")
        return cls.from_dict(body)


__all__ = ["TYPE_PATTERN", "CloudEvent", "rfc3339"]
