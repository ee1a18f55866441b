"""MLflow's request messages (``service.proto``, ``model_registry.proto``) as pydantic models.

Field names are the protos'; unknown fields are ignored, as protobuf's JSON parser does.
Keys and values keep tracking's limits (``experiments.schemas``, ``runs.schemas``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from inwire.services.training.experiments.schemas import Key, TagValue
from inwire.services.training.runs.schemas import ParamValue

#: Proto int64 arrives as a JSON number or a decimal string.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: GET requests carry booleans as query text.
Bool = Annotated[
    bool,
    BeforeValidator(lambda v: v.lower() == "true" if isinstance(v, str) else v),
]
ViewType = Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
#: Largest page MLflow's own server serves.
MAX_RESULTS = 50_000


class Message(BaseModel):
    """A request message: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class KeyValue(Message):
    """A tag or param: ``{"key", "value"}``."""

    key: Key
    value: TagValue = ""


class ParamKV(Message):
    """A param: ``{"key", "value"}``."""

    key: Key
    value: ParamValue = ""


class RunRef(Message):
    """A request naming a run by ``run_id`` (or the older ``run_uuid``)."""

    run_id: str = ""
    run_uuid: str = ""

    @model_validator(mode="after")
    def _one_id(self) -> RunRef:
        if not self.run_id:
            self.run_id = self.run_uuid
        if not self.run_id:
            raise ValueError("run_id is required")
        return self


# -- experiments ---------------------------------------------------------------------------


class CreateExperiment(Message):
    name: str = Field(min_length=1)
    artifact_location: str = ""
    tags: list[KeyValue] = Field(default_factory=list)


class ExperimentRef(Message):
    experiment_id: str = Field(min_length=1)


class ExperimentByName(Message):
    experiment_name: str = Field(min_length=1)


class SearchExperiments(Message):
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 1000
    page_token: str = ""
    filter: str = ""
    order_by: list[str] = Field(default_factory=list)
    view_type: ViewType = "ACTIVE_ONLY"


class UpdateExperiment(Message):
    experiment_id: str = Field(min_length=1)
    new_name: str = ""


class SetExperimentTag(Message):
    experiment_id: str = Field(min_length=1)
    key: Key
    value: TagValue = ""


class DeleteExperimentTag(Message):
    experiment_id: str = Field(min_length=1)
    key: Key


# -- runs ------------------------------------------------------------------------------------


class CreateRun(Message):
    experiment_id: str = "0"
    user_id: str = ""
    run_name: str = ""
    start_time: Int64 | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRun(RunRef):
    status: Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"] | None = None
    end_time: Int64 | None = None
    run_name: str = ""


class MetricIn(Message):
    key: Key
    value: float
    timestamp: Int64 = 0
    step: Int64 = 0


class LogMetric(RunRef, MetricIn):
    pass


class LogParam(RunRef):
    key: Key
    value: ParamValue = ""


class SetTag(RunRef):
    key: Key
    value: TagValue = ""


class DeleteTag(RunRef):
    key: Key


class LogBatch(RunRef):
    metrics: Annotated[list[MetricIn], Field(max_length=1000)] = Field(default_factory=list)
    params: Annotated[list[ParamKV], Field(max_length=100)] = Field(default_factory=list)
    tags: Annotated[list[KeyValue], Field(max_length=100)] = Field(default_factory=list)


class Dataset(Message):
    name: Annotated[str, Field(min_length=1, max_length=500)]
    digest: Annotated[str, Field(min_length=1, max_length=64)]
    source_type: Annotated[str, Field(max_length=100)] = ""
    source: str = ""
    schema_: str = Field(default="", alias="schema")
    profile: str = ""


class DatasetInput(Message):
    tags: list[KeyValue] = Field(default_factory=list)
    dataset: Dataset


class LogInputs(RunRef):
    datasets: Annotated[list[DatasetInput], Field(max_length=1000)] = Field(default_factory=list)


class ModelOutput(Message):
    model_id: str = Field(min_length=1)
    step: Int64 = 0


class LogOutputs(RunRef):
    models: list[ModelOutput] = Field(default_factory=list)


class SearchRuns(Message):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str = ""
    run_view_type: ViewType = "ACTIVE_ONLY"
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 1000
    order_by: Annotated[list[str], Field(max_length=10)] = Field(default_factory=list)
    page_token: str = ""


class GetMetricHistory(RunRef):
    metric_key: Key
    max_results: Annotated[int, Field(ge=1, le=1_000_000)] = 25_000
    page_token: str = ""


class ListArtifacts(RunRef):
    path: str = ""
    page_token: str = ""


# -- logged models ---------------------------------------------------------------------------


class CreateLoggedModel(Message):
    experiment_id: str = Field(min_length=1)
    name: Annotated[str, Field(max_length=250)] = ""
    model_type: Annotated[str, Field(max_length=200)] = ""
    source_run_id: str = ""
    params: list[ParamKV] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class FinalizeLoggedModel(Message):
    status: Literal["LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_PENDING"]


class LoggedModelTags(Message):
    tags: list[KeyValue] = Field(default_factory=list)


class LoggedModelParams(Message):
    params: list[ParamKV] = Field(default_factory=list)


class SearchLoggedModels(Message):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str = ""
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 100
    order_by: list[dict[str, Any]] = Field(default_factory=list)
    page_token: str = ""


# -- model registry --------------------------------------------------------------------------


class ModelName(Message):
    name: str = Field(min_length=1)


class CreateRegisteredModel(ModelName):
    tags: list[KeyValue] = Field(default_factory=list)
    description: str = ""


class RenameRegisteredModel(ModelName):
    new_name: str = Field(min_length=1)


class UpdateRegisteredModel(ModelName):
    description: str | None = None


class SearchRegistry(Message):
    filter: str = ""
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 100
    order_by: list[str] = Field(default_factory=list)
    page_token: str = ""


class LatestVersions(ModelName):
    stages: list[str] = Field(default_factory=list)


class ModelTag(ModelName):
    key: Key
    value: TagValue = ""


class ModelTagKey(ModelName):
    key: Key


class AliasSet(ModelName):
    alias: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1)


class AliasRef(ModelName):
    alias: str = Field(min_length=1, max_length=255)


class CreateModelVersion(ModelName):
    source: str = ""
    run_id: str = ""
    tags: list[KeyValue] = Field(default_factory=list)
    run_link: str = ""
    description: str = ""
    model_id: str = ""


class VersionRef(ModelName):
    version: str = Field(min_length=1)


class UpdateModelVersion(VersionRef):
    description: str | None = None


class TransitionStage(VersionRef):
    stage: str = Field(min_length=1)
    archive_existing_versions: Bool = False


class VersionTag(VersionRef):
    key: Key
    value: TagValue = ""


class VersionTagKey(VersionRef):
    key: Key
