"""Job functions by type name, as importable paths a worker process can load.

A job function is ``fn(ctx: JobContext, input: dict) -> dict | None`` (an ``async def`` is
accepted too). It must live at module level in an importable module, because it runs in a
separate worker process (or, later, on a Ray cluster) that imports it by path.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from inwire.kit.jobs.context import JobContext

JobResult: TypeAlias = dict[str, Any] | None
JobFunction: TypeAlias = Callable[["JobContext", dict[str, Any]], JobResult | Awaitable[JobResult]]

_TYPE = re.compile(r"^[a-z][a-z0-9_.:-]{0,99}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def target_of(fn: Callable[..., Any]) -> str:
    """The ``module:qualname`` path of a module-level function; ValueError for others."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"job function {fn!r} must be defined at module level in an importable module "
            "(a worker process imports it by path)"
        )
    target = f"{module}:{qualname}"
    if resolve(target) is not fn:
        raise ValueError(f"job function {fn!r} is not reachable as {target}")
    return target


def resolve(target: str) -> Callable[..., Any]:
    """Import the callable a ``module:qualname`` path names."""
    if not _TARGET.match(target):
        raise ValueError(f"job target {target!r} is not of the form 'package.module:function'")
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"job target {target!r} is not callable")
    fn: Callable[..., Any] = obj
    return fn


class JobRegistry:
    """The job types a service runs, each mapped to its function's import path.

    Built in the service's ``create_app``::

        registry = JobRegistry({"synthex.generate": generate_dataset})
        registry.register("synthex.export", "inwire.services.synthex.exports.jobs:export")
    """

    def __init__(self, jobs: Mapping[str, JobFunction | str] | None = None) -> None:
        self._targets: dict[str, str] = {}
        for job_type, fn in (jobs or {}).items():
            self.register(job_type, fn)

    @classmethod
    def installed(cls, targets: Mapping[str, str]) -> JobRegistry:
        """A registry of those ``targets`` (type -> ``module:function``) whose module exists.

        A service lists every job type it will have; a type whose module is not in this
        installation (not built yet, or an optional part left out) is simply not offered.
        """
        registry = cls()
        for job_type, target in targets.items():
            module = target.partition(":")[0]
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if found:
                registry.register(job_type, target)
        return registry

    def register(self, job_type: str, fn: JobFunction | str) -> None:
        """Add a job type, given its function or its ``module:function`` path."""
        if not _TYPE.match(job_type):
            raise ValueError(
                f"job type {job_type!r} must be lowercase letters, digits and . _ : - "
                "(at most 100 characters)"
            )
        if job_type in self._targets:
            raise ValueError(f"job type {job_type!r} is already registered")
        if isinstance(fn, str):
            if not _TARGET.match(fn):
                raise ValueError(f"job target {fn!r} is not of the form 'package.module:function'")
            self._targets[job_type] = fn
        else:
            self._targets[job_type] = target_of(fn)

    def job(self, job_type: str) -> Callable[[JobFunction], JobFunction]:
        """Decorator form of ``register``."""

        def decorate(fn: JobFunction) -> JobFunction:
            self.register(job_type, fn)
            return fn

        return decorate

    def target(self, job_type: str) -> str:
        """The import path of a type's function; KeyError if unknown."""
        return self._targets[job_type]

    @property
    def types(self) -> tuple[str, ...]:
        """Every registered type, sorted."""
        return tuple(sorted(self._targets))

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.types)

    def __len__(self) -> int:
        return len(self._targets)
