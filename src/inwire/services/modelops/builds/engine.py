"""The container builder: the Docker Engine API (``POST /build``, ``POST /images/…/push``).

Docker (and BuildKit behind dockerd) takes a build context as a tar (gzip accepted) and
answers with a stream of JSON lines: ``{"stream": …}`` build output, ``{"aux": {"ID": …}}``
the image id, ``{"error": …}`` a failure. A push answers the same way, with the digest in
``{"aux": {"Digest": …}}``. ``http://host:port`` and ``unix:///path/docker.sock`` endpoints
are supported.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

#: Docker Engine API version asked for (supported by Docker 20.10 and later).
API_VERSION = "v1.41"


class BuilderError(Exception):
    """The container builder refused or failed; the message says why."""


def _client(url: str, timeout: float) -> httpx.AsyncClient:
    if url.startswith("unix://"):
        transport = httpx.AsyncHTTPTransport(uds=url.removeprefix("unix://"))
        return httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=timeout)
    if url.startswith(("http://", "https://", "tcp://")):
        base = "http://" + url.removeprefix("tcp://") if url.startswith("tcp://") else url
        return httpx.AsyncClient(base_url=base.rstrip("/"), timeout=timeout)
    raise BuilderError(f"Unsupported container builder endpoint {url!r} (http:// or unix://)")


async def _lines(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            message = {"stream": line}
        if isinstance(message, dict):
            yield message


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(256 * 1024):
            yield chunk


def registry_auth(username: str, password: str, server: str) -> str:
    """The ``X-Registry-Auth`` header value for a registry's credentials."""
    payload = {"username": username, "password": password, "serveraddress": server}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


class DockerEngine:
    """A Docker Engine API endpoint; ``log`` receives every line of output."""

    def __init__(self, url: str, log: Callable[[str], None], *, timeout: float = 3600.0) -> None:
        self.url = url
        self.log = log
        self._http = _client(url, timeout)

    async def close(self) -> None:
        """Close the connection."""
        await self._http.aclose()

    async def _stream(self, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        aux: dict[str, Any] = {}
        try:
            async with self._http.stream("POST", f"/{API_VERSION}{path}", **kwargs) as response:
                if response.status_code >= 400:
                    body = (await response.aread()).decode(errors="replace")
                    with contextlib.suppress(ValueError, AttributeError):
                        body = json.loads(body).get("message", body)
                    raise BuilderError(f"{what} refused ({response.status_code}): {body}")
                async for message in _lines(response):
                    if "error" in message or "errorDetail" in message:
                        detail = message.get("errorDetail") or {}
                        raise BuilderError(
                            f"{what} failed: {detail.get('message') or message.get('error')}"
                        )
                    if isinstance(message.get("stream"), str):
                        for text in message["stream"].splitlines():
                            if text.strip():
                                self.log(text)
                    elif "status" in message:
                        progress = message.get("id")
                        self.log(
                            f"{progress}: {message['status']}" if progress else message["status"]
                        )
                    if isinstance(message.get("aux"), dict):
                        aux.update(message["aux"])
        except httpx.HTTPError as exc:
            raise BuilderError(
                f"{what}: the container builder at {self.url} is unreachable ({exc})"
            ) from exc
        return aux

    async def build(self, context: Path, tag: str) -> str:
        """Build ``context`` (a tar.gz with a ``Dockerfile``) as ``tag``; the image id."""
        aux = await self._stream(
            "/build",
            "The image build",
            params={"t": tag, "rm": "1", "forcerm": "1", "dockerfile": "Dockerfile"},
            headers={"Content-Type": "application/x-tar"},
            content=_file_chunks(context),
        )
        image_id = aux.get("ID")
        if not isinstance(image_id, str):
            raise BuilderError("The image build ended without naming the image it built")
        return image_id

    async def push(self, image: str, auth: str) -> str | None:
        """Push ``image`` (``name:tag``) with ``auth`` (``registry_auth``); its digest."""
        name, _, tag = image.rpartition(":")
        if "/" in tag or not name:
            name, tag = image, "latest"
        aux = await self._stream(
            f"/images/{quote(name, safe='/:')}/push",
            "The image push",
            params={"tag": tag},
            headers={"X-Registry-Auth": auth},
        )
        digest = aux.get("Digest")
        return digest if isinstance(digest, str) else None
