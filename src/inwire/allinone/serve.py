"""One service in this process under uvicorn: what ``inwire serve`` and each child run.

The supervisor starts children as ``python -m inwire.allinone.serve --factory … --settings …``
rather than through ``inwire serve <name>``, so that a child needs only the spec it is given,
not the registry (tests supervise fake services this way).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from inwire.services.registry import ServiceSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from inwire.kit.settings import ServiceSettings


def settings_for(
    spec: ServiceSpec, *, host: str | None = None, port: int | None = None
) -> ServiceSettings:
    """The service's settings from the environment; ``host``/``port`` win when given."""
    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    return spec.settings(**overrides)


def build_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """The service's app, built by its registered factory from ``settings``."""
    return spec.load_factory()(settings)


@contextmanager
def signals_end_cleanly() -> Iterator[None]:
    """Let a process that uvicorn shut down on SIGINT/SIGTERM exit normally (status 0).

    After a graceful shutdown uvicorn re-raises the signal it caught, under the handlers it
    found; the work is done by then, so the handlers found here ignore it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    spec: ServiceSpec,
    *,
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> None:
    """Build the service's app and serve it until SIGINT/SIGTERM (graceful shutdown)."""
    import uvicorn

    settings = settings_for(spec, host=host, port=port)
    app = build_app(spec, settings)
    # The kit logs every request itself (JSON, with request id), so uvicorn's access log
    # would only duplicate it.
    with signals_end_cleanly():
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            access_log=False,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )


def child_command(spec: ServiceSpec, *, python: str, host: str, port: int) -> list[str]:
    """The argv that serves ``spec`` in a child process."""
    return [
        python,
        "-m",
        "inwire.allinone.serve",
        "--name",
        spec.name,
        "--package",
        spec.package,
        "--prefix",
        spec.prefix,
        "--factory",
        spec.app_factory,
        "--settings",
        spec.settings_class,
        "--host",
        host,
        "--port",
        str(port),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of a supervised child."""
    parser = argparse.ArgumentParser(prog="python -m inwire.allinone.serve")
    parser.add_argument("--name", required=True)
    parser.add_argument("--package", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--factory", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    spec = ServiceSpec(
        name=args.name,
        package=args.package or args.factory.partition(":")[0].rpartition(".")[0],
        port=args.port or 0,
        prefix=args.prefix,
        app_factory=args.factory,
        settings_class=args.settings,
    )
    serve(spec, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
