"""Wire shapes of registered models, model versions, aliases and stages."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from inwire.kit.api import PatchModel, WireModel, printable

#: A model id as the registry gives them: ``mdl_`` and a ULID.
MODEL_ID = re.compile(r"^mdl_[0-9A-HJKMNP-TV-Z]{26}$")


def _model_name(value: str) -> str:
    if "/" in value or value in (".", ".."):
        raise ValueError("must not contain '/' nor be '.' or '..'")
    if MODEL_ID.match(value):
        raise ValueError("must not look like a model id (mdl_…)")
    return value


#: A registered model's name: unique in the organization, usable in a URL path segment.
ModelName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=250),
    AfterValidator(printable),
    AfterValidator(_model_name),
]
#: A tag key: letters, digits and ``_ - . / space :`` (as MLflow allows).
Key = Annotated[str, StringConstraints(min_length=1, max_length=250, pattern=r"^[\w\-. /:]+$")]
TagValue = Annotated[str, Field(max_length=5000)]
Tags = Annotated[dict[Key, TagValue], Field(max_length=100)]
Description = Annotated[str, Field(max_length=20_000)]
ModelCard = Annotated[str, Field(max_length=200_000)]


def _alias(value: str) -> str:
    # MLflow reserves "latest" (any case) and version-like names ("v3"): both would make
    # ``models:/name@alias`` ambiguous with version references.
    if value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value):
        raise ValueError(f"'{value}' is reserved (latest and v<number> name versions)")
    return value


#: An alias: letters, digits, ``_`` and ``-``, not ``latest`` nor ``v<number>``.
Alias = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_\-]+$"),
    AfterValidator(_alias),
]

#: The framework of a model version; ``python`` is a custom Python model (MLflow pyfunc).
Flavor = Literal["sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "python"]
FLAVORS: tuple[str, ...] = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "python")
Stage = Literal["None", "Staging", "Production", "Archived"]
STAGES: tuple[str, ...] = ("None", "Staging", "Production", "Archived")
Status = Literal["PENDING_REGISTRATION", "READY", "FAILED_REGISTRATION"]
SourceKind = Literal["run", "upload"]
SignatureSource = Literal["mlmodel", "example", "given"]

#: Run ids and other references: a safe object-key segment.
Reference = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\w\-.]+$")]
_Text = Annotated[str, StringConstraints(max_length=500), AfterValidator(printable)]


class Lineage(BaseModel):
    """What a version was made from, as the registering client says (recorded, not checked)."""

    model_config = ConfigDict(extra="forbid")
    run_id: Reference | None = None
    experiment_id: Reference | None = None
    dataset_id: Reference | None = None
    dataset_version_id: Reference | None = None
    git_repo: _Text | None = None
    git_commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4,64}$")] | None = None
    entry_point: _Text | None = None
    #: A link to the run in a tracking UI (MLflow's ``run_link``).
    run_link: Annotated[str, Field(max_length=1000)] | None = None


_SCALARS = frozenset(
    {"boolean", "integer", "long", "float", "double", "string", "binary", "datetime", "any"}
)


def check_field_spec(spec: Any, where: str, *, top: bool = True) -> None:
    """Raise ``ValueError`` unless ``spec`` is one field of an MLflow schema.

    Column specs (``{"type": "double", "name": "x", "required": true}``), arrays
    (``items``), objects (``properties``), maps (``values``) and tensor specs
    (``{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}``).
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a field spec is an object")
    kind = spec.get("type")
    allowed = {"type", "name", "required"}
    if top is False:
        allowed.discard("name")
    if kind in _SCALARS:
        pass
    elif kind == "array":
        allowed.add("items")
        check_field_spec(spec.get("items"), f"{where}.items", top=False)
    elif kind == "object":
        allowed.add("properties")
        props = spec.get("properties")
        if not isinstance(props, dict) or not props:
            raise ValueError(f"{where}.properties: an object needs its properties")
        for name, sub in props.items():
            check_field_spec(sub, f"{where}.properties.{name}", top=False)
    elif kind == "map":
        allowed.add("values")
        check_field_spec(spec.get("values"), f"{where}.values", top=False)
    elif kind == "tensor":
        allowed.add("tensor-spec")
        tensor = spec.get("tensor-spec")
        if not (
            isinstance(tensor, dict)
            and isinstance(tensor.get("dtype"), str)
            and isinstance(tensor.get("shape"), list)
            and all(isinstance(n, int) for n in tensor["shape"])
        ):
            raise ValueError(f"{where}.tensor-spec: needs a dtype and an integer shape")
    else:
        raise ValueError(f"{where}.type: unknown type {kind!r}")
    extra = set(spec) - allowed
    if extra:
        raise ValueError(f"{where}: unexpected keys {sorted(extra)}")
    if "name" in spec and not (isinstance(spec["name"], str) and spec["name"]):
        raise ValueError(f"{where}.name: a non-empty string")
    if "required" in spec and not isinstance(spec["required"], bool):
        raise ValueError(f"{where}.required: true or false")


class Signature(BaseModel):
    """A model's input and output schema (and inference params), in MLflow's JSON form."""

    model_config = ConfigDict(extra="forbid")
    inputs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)]
    outputs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)] | None = None
    params: Annotated[list[dict[str, Any]], Field(max_length=1000)] | None = None

    @field_validator("inputs", "outputs")
    @classmethod
    def _specs(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, spec in enumerate(value or []):
            check_field_spec(spec, f"[{i}]")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, spec in enumerate(value or []):
            if not (isinstance(spec.get("name"), str) and spec.get("type") in _SCALARS):
                raise ValueError(f"[{i}]: a param spec has a name and a scalar type")
        return value


class ModelCreate(BaseModel):
    """A new registered model."""

    model_config = ConfigDict(extra="forbid")
    name: ModelName
    description: Description = ""
    model_card: ModelCard = ""
    tags: Tags = Field(default_factory=dict)


class ModelUpdate(PatchModel):
    """Changes to a registered model: a new name, description, model card, or tags
    (replacing them all)."""

    name: ModelName | None = None
    description: Description | None = None
    model_card: ModelCard | None = None
    tags: Tags | None = None


class TagValueIn(BaseModel):
    """The value of one tag."""

    model_config = ConfigDict(extra="forbid")
    value: TagValue


class RunArtifactSource(BaseModel):
    """A training run's artifact: a file or a folder (``""``: all the run's artifacts)."""

    model_config = ConfigDict(extra="forbid")
    run_id: Reference
    artifact_path: Annotated[str, Field(max_length=900)] = ""
    #: How the client names this source (an MLflow artifact URI, say), recorded as the
    #: version's ``source``; by default ``runs:/<run id>/<artifact path>``.
    uri: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class VersionOptions(BaseModel):
    """What a new version may say about itself, whatever its source."""

    model_config = ConfigDict(extra="forbid")
    description: Description = ""
    tags: Tags = Field(default_factory=dict)
    #: The framework; detected from an MLmodel file when left out.
    flavor: Flavor | None = None
    #: The schema; else taken from an MLmodel file, else inferred from the examples.
    signature: Signature | None = None
    #: A few rows of input: records, ``{"columns", "data"}``, columns of lists or one record.
    input_example: Any = None
    #: The model's output for ``input_example``, to infer the output schema.
    output_example: Any = None
    lineage: Lineage = Field(default_factory=Lineage)


class VersionCreate(VersionOptions):
    """A new version from a training run's artifact, copied into the registry."""

    source: RunArtifactSource


class VersionUpdate(PatchModel):
    """Changes to a version: its description or its tags (replacing them all)."""

    description: Description | None = None
    tags: Tags | None = None


class StageTransition(BaseModel):
    """Move a version to a stage (MLflow's transition semantics)."""

    model_config = ConfigDict(extra="forbid")
    #: ``None``, ``Staging``, ``Production`` or ``Archived`` (any case).
    stage: Annotated[str, Field(max_length=20)]
    #: Archive the versions now in the target stage (only for Staging and Production).
    archive_existing_versions: bool = False


class AliasSet(BaseModel):
    """Point an alias at a version (moving it from any other version of the model)."""

    model_config = ConfigDict(extra="forbid")
    version: Annotated[int, Field(ge=1)]


class ModelVersionOut(WireModel):
    """One version of a registered model."""

    id: str
    model_id: str
    name: str
    version: int
    description: str
    tags: dict[str, str]
    status: Status
    status_message: str
    stage: Stage
    aliases: list[str]
    source_kind: SourceKind
    source: str
    run_id: str | None
    lineage: dict[str, Any]
    flavor: Flavor | None
    flavors: list[str]
    signature: dict[str, Any] | None
    signature_source: SignatureSource | None
    input_example: Any
    file_count: int
    size_bytes: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class RegisteredModelOut(WireModel):
    """A registered model, its aliases and its latest version in each stage."""

    id: str
    name: str
    description: str
    model_card: str
    tags: dict[str, str]
    #: alias -> version number.
    aliases: dict[str, int]
    #: The highest version number given so far (0 before the first version).
    last_version: int
    #: The newest version in each stage that has one (MLflow's ``latest_versions``).
    latest_versions: list[ModelVersionOut]
    created_by: str
    created_at: datetime
    updated_at: datetime


class VersionFile(BaseModel):
    """A file or folder of a version."""

    path: str
    is_dir: bool
    size: int | None = None
