"""Wire shapes of recipes, their versions, previews and applications."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from inwire.kit.api import PatchModel, WireModel
from inwire.kit.jobs.router import JobOut
from inwire.services.synthex.datasets.schemas import DatasetName, Description, Tags
from inwire.services.synthex.recipes.engine import MAX_STEPS
from inwire.services.synthex.schema import ColumnSpec

#: Steps as sent: each an object with an ``op``; the engine checks them one by one so a
#: problem names its step (a plain pydantic union would only say "no union member matched").
Steps = Annotated[
    list[dict[str, Any]],
    Field(
        max_length=MAX_STEPS,
        description="The steps, in order; each an object with an `op` and its parameters",
    ),
]
Note = Annotated[str, Field(max_length=2000)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]


class RecipeCreate(BaseModel):
    """A new recipe (its version 1)."""

    model_config = ConfigDict(extra="forbid")

    name: DatasetName
    description: Description = ""
    tags: Tags = []
    steps: Steps
    seed: Seed | None = Field(
        default=None, description="Seed of `fake` steps; default: a random one, kept"
    )


class RecipeUpdate(PatchModel):
    """Changes to a recipe; new ``steps`` make a new version (unless they are unchanged)."""

    name: DatasetName | None = None
    description: Description | None = None
    tags: Tags | None = None
    steps: Steps | None = None
    note: Note | None = Field(default=None, description="What changed (with new steps)")


class RecipeOut(WireModel):
    """A recipe with the steps of its newest version."""

    id: str
    name: str
    description: str
    tags: list[str]
    version: int = Field(description="Number of the newest version")
    steps: list[dict[str, Any]]
    step_count: int
    seed: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class RecipeVersionOut(WireModel):
    """One immutable version of a recipe's steps."""

    id: str
    recipe_id: str
    number: int
    steps: list[dict[str, Any]]
    note: str
    created_by: str
    created_at: datetime


class PreviewRequest(BaseModel):
    """What to preview: which dataset version, which steps, how many rows."""

    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(min_length=1, max_length=40, description="A dataset version id")
    recipe_version: int | None = Field(
        default=None, ge=1, description="Recipe version to preview; default the newest"
    )
    steps: Steps | None = Field(
        default=None, description="Try these steps instead of a saved version's (not saved)"
    )
    rows: int = Field(default=20, ge=1, description="Rows returned (at most preview_max_rows)")
    sample_rows: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Rows read from the start of the version; statistics are the sample's",
    )


class Preview(BaseModel):
    """The first rows after the steps, on a sample, and what the steps produce."""

    columns: list[str]
    schema_: list[ColumnSpec] = Field(alias="schema")
    rows: list[dict[str, Any]]
    sample_rows: int = Field(description="Rows of the version read")
    result_rows: int = Field(description="Rows of the sample left after the steps")
    fitted: list[dict[str, Any]] = Field(
        description="Values steps learnt from the sample (means, edges, categories)"
    )

    model_config = ConfigDict(populate_by_name=True)


class NewDatasetSpec(BaseModel):
    """A new dataset for the result, instead of a new version of the source's dataset."""

    model_config = ConfigDict(extra="forbid")

    name: DatasetName
    description: Description = ""
    tags: Tags = []


class ApplyRequest(BaseModel):
    """Apply a recipe version to a dataset version, making a new version."""

    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(min_length=1, max_length=40, description="The source version")
    recipe_version: int | None = Field(default=None, ge=1, description="Default the newest")
    description: Description = ""
    tags: Tags = []
    new_dataset: NewDatasetSpec | None = Field(
        default=None,
        description="Put the result in a new dataset; default: the source's next version",
    )


class ApplyStarted(BaseModel):
    """The job applying the recipe."""

    recipe_id: str
    recipe_version: int
    version_id: str
    job: JobOut
