"""The synthesis methods, by name, imported only when used.

One line per method: its name → ``"module:Class"``. Resolving a name imports that one
module, so validating a copula configuration never loads PyTorch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from pydantic import BaseModel

from inwire.kit.errors import Invalid

if TYPE_CHECKING:
    from inwire.services.synthex.generators.base import Synthesizer

_PACKAGE = "inwire.services.synthex.generators.methods"

METHODS: dict[str, str] = {
    "gaussian_copula": f"{_PACKAGE}.copula:GaussianCopula",
    "marginals": f"{_PACKAGE}.marginals:IndependentMarginals",
    "privbayes": f"{_PACKAGE}.privbayes:PrivBayes",
    "mst": f"{_PACKAGE}.mst:MST",
    "ctgan": f"{_PACKAGE}.ctgan:CTGAN",
    "tvae": f"{_PACKAGE}.tvae:TVAE",
}


def method_class(name: str) -> type[Synthesizer]:
    """The class of method ``name``; a 400 naming the known methods when there is none."""
    target = METHODS.get(name)
    if target is None:
        raise Invalid(
            f"Unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}.",
            details=[{"field": "method", "reason": "unknown", "choices": sorted(METHODS)}],
        )
    module, _, attribute = target.partition(":")
    cls: type[Synthesizer] = getattr(import_module(module), attribute)
    return cls


def params_model(name: str) -> type[BaseModel]:
    """The ``Params`` model of method ``name`` (imports the method's module, not torch)."""
    return method_class(name).Params


def create(name: str, params: BaseModel | dict[str, object] | None = None) -> Synthesizer:
    """A new, unfitted synthesizer of method ``name`` with ``params`` (validated)."""
    return method_class(name)(params)
