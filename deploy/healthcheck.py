"""Container health check: exit 0 when the Inwire service in this container answers.

The image's ``HEALTHCHECK`` runs this without arguments: it reads the command line of the
container's main process (``inwire serve <service> [--host H] [--port N]``, or
``inwire gateway serve [...]``, PID 1) to find
the service and its port (``--port``, else ``INWIRE_<SERVICE>_PORT``, else the registered
port) and GETs ``/health/live``. Compose passes ``--port`` and ``--path /health/ready``
explicitly. Standard library only, apart from the service registry (which imports no
service), so a check costs one short Python start.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

#: The gateway's port (founding document) where the registry does not name it.
GATEWAY = "gateway"
GATEWAY_PORT = 8080
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def served(cmdline: Sequence[str]) -> tuple[str, str | None, int | None]:
    """``(service, host, port)`` of an ``inwire [gateway] serve`` command line, else ValueError."""
    args = list(cmdline)
    if "serve" not in args:
        raise ValueError(f"not an 'inwire serve' command: {' '.join(args)!r}")
    at = args.index("serve")
    rest = args[at + 1 :]
    # `inwire gateway serve [...]` runs the gateway; `inwire serve <service> [...]` a service.
    service: str | None = GATEWAY if at > 0 and args[at - 1] == GATEWAY else None
    options: dict[str, str] = {}
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            if not sep and i + 1 < len(rest):
                i += 1
                value = rest[i]
            options[name] = value
        elif service is None:
            service = arg
        i += 1
    if service is None:
        raise ValueError("no service named after 'serve'")
    port = options.get("port")
    return service, options.get("host"), int(port) if port else None


def default_port(service: str) -> int:
    """The port ``service`` listens on when no ``--port`` is given."""
    variable = f"INWIRE_{service.upper().replace('-', '_')}_PORT"
    if os.environ.get(variable, "").strip():
        return int(os.environ[variable])
    from inwire.services import registry

    gateway = getattr(registry, "GATEWAY", None)
    if service == GATEWAY:
        return int(gateway.port) if gateway is not None else GATEWAY_PORT
    port: int = registry.get(service).port
    return port


def probe(url: str, timeout: float) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Check the service once; 0 when healthy, 1 otherwise (Docker's convention)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="default: found from PID 1's command line")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="/health/live")
    parser.add_argument("--timeout", type=float, default=4.0)
    parser.add_argument("--cmdline", default="/proc/1/cmdline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    host, port = args.host, args.port
    if port is None:
        try:
            with open(args.cmdline, "rb") as fh:
                cmdline = [part.decode() for part in fh.read().split(b"\0") if part]
            service, bound, port = served(cmdline)
            port = port or default_port(service)
        except (OSError, ValueError, KeyError) as exc:
            sys.stderr.write(f"healthcheck: {exc}\n")
            return 1
        if bound is not None and bound not in _ANY_ADDRESS:
            host = bound
    url = f"http://{host}:{port}{args.path}"
    if probe(url, args.timeout):
        return 0
    sys.stderr.write(f"healthcheck: {url} did not answer 200\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
