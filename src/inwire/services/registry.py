"""The services Inwire runs: name, package, port, gateway prefix and how to build each app.

``inwire up``, ``inwire serve`` and ``inwire migrate`` read only this list, so a new service
is one more line in ``SERVICES``. Factories and settings classes are named by string
(``"module:attribute"``) and imported only when a command needs them: reading the registry
imports no service, and services stay independent of each other (import-linter).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from inwire.kit.settings import ServiceSettings


def _resolve(target: str) -> Any:
    """The attribute named by ``"package.module:attribute"``."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ServiceSpec:
    """One service: where its code lives, where it listens and how to build its app."""

    name: str
    package: str
    port: int
    prefix: str
    #: ``"module:function"``; the function takes the settings (or None) and returns the app.
    app_factory: str
    #: ``"module:Class"``, a subclass of ``inwire.kit.settings.ServiceSettings``.
    settings_class: str

    @property
    def app_module(self) -> str:
        """The module that holds the app factory (and ``MIGRATIONS``)."""
        return self.app_factory.partition(":")[0]

    @property
    def env_prefix(self) -> str:
        """Prefix of this service's own variables: ``INWIRE_<SERVICE>_``."""
        return f"INWIRE_{self.name.upper().replace('-', '_')}_"

    def configured_port(self, environ: Mapping[str, str] | None = None) -> int:
        """``INWIRE_<SERVICE>_PORT`` when set, else the registered port."""
        env = os.environ if environ is None else environ
        value = env.get(f"{self.env_prefix}PORT", "").strip()
        return int(value) if value else self.port

    def load_factory(self) -> Callable[..., FastAPI]:
        """Import and return the app factory."""
        factory: Callable[..., FastAPI] = _resolve(self.app_factory)
        return factory

    def load_settings_class(self) -> type[ServiceSettings]:
        """Import and return the settings class."""
        settings_class: type[ServiceSettings] = _resolve(self.settings_class)
        return settings_class

    def settings(self, **overrides: Any) -> ServiceSettings:
        """The service's settings from the environment, with ``overrides`` on top."""
        return self.load_settings_class()(**overrides)

    def migrations(self) -> Path | None:
        """The Alembic folder the app module exposes as ``MIGRATIONS``, if any."""
        module = importlib.import_module(self.app_module)
        location = getattr(module, "MIGRATIONS", None)
        return Path(location) if location is not None else None


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="core",
        package="inwire.services.core",
        port=18000,
        prefix="/core",
        app_factory="inwire.services.core.app:create_app",
        settings_class="inwire.services.core.settings:CoreSettings",
    ),
    ServiceSpec(
        name="synthex",
        package="inwire.services.synthex",
        port=18090,
        prefix="/synthex",
        app_factory="inwire.services.synthex.app:create_app",
        settings_class="inwire.services.synthex.settings:SynthexSettings",
    ),
    ServiceSpec(
        name="training",
        package="inwire.services.training",
        port=18052,
        prefix="/training",
        app_factory="inwire.services.training.app:create_app",
        settings_class="inwire.services.training.settings:TrainingSettings",
    ),
    ServiceSpec(
        name="modelops",
        package="inwire.services.modelops",
        port=18087,
        prefix="/modelops",
        app_factory="inwire.services.modelops.app:create_app",
        settings_class="inwire.services.modelops.settings:ModelOpsSettings",
    ),
)

#: The API gateway: not a service (no database, no prefix), but ``inwire up`` runs it in
#: front of the services, supervised like them (``with_gateway``).
GATEWAY = ServiceSpec(
    name="gateway",
    package="inwire.gateway",
    port=8080,
    prefix="",
    app_factory="inwire.gateway.app:create_app",
    settings_class="inwire.gateway.settings:GatewaySettings",
)


def with_gateway(services: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """``services`` and, when Core (which the gateway authenticates with) is among them,
    the gateway after them."""
    listed = list(services)
    if any(s.name == "core" for s in listed) and all(s.name != GATEWAY.name for s in listed):
        listed.append(GATEWAY)
    return listed


def names(services: Sequence[ServiceSpec] | None = None) -> list[str]:
    """The registered service names, in start order."""
    return [spec.name for spec in (SERVICES if services is None else services)]


def get(name: str, services: Sequence[ServiceSpec] | None = None) -> ServiceSpec:
    """The service called ``name``; ``KeyError`` names the known ones when there is none."""
    for spec in SERVICES if services is None else services:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r}; known: {', '.join(names(services))}")
