"""From a tuning request to Optuna: distributions, sampler, pruner, and the checks between them.

Pure functions over the validated request; Optuna is imported inside them (it is heavy and
only jobs and the importance endpoint need it).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from inwire.kit.errors import Invalid
from inwire.services.training.tuning.schemas import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    TuningCreate,
)

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: Most points a grid search may enumerate.
MAX_GRID_POINTS = 100_000
#: Optuna state names as the API shows them.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details=[{"field": field, "message": message}])


def grid_values(name: str, param: Param) -> list[Any]:
    """Every value a grid search tries for one parameter; Invalid when it cannot enumerate."""
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        if param.log:
            raise _invalid(f"space.{name}.log", "A grid search cannot use a log-scale range")
        return list(range(param.low, param.high + 1, param.step))
    if param.step is None:
        raise _invalid(
            f"space.{name}.step", f"A grid search needs a step for the float range {name!r}"
        )
    count = math.floor((param.high - param.low) / param.step + 1e-9) + 1
    if count > MAX_GRID_POINTS:
        raise _invalid(f"space.{name}.step", f"The grid of {name!r} has {count} points")
    return [round(param.low + i * param.step, 12) for i in range(count)]


def grid(space: dict[str, Param]) -> dict[str, list[Any]]:
    """The grid of a whole space; Invalid when a range has no step or the grid is too big."""
    values = {name: grid_values(name, p) for name, p in space.items()}
    points = math.prod(len(v) for v in values.values())
    if points > MAX_GRID_POINTS:
        raise _invalid("space", f"The grid has {points} points; at most {MAX_GRID_POINTS}")
    return values


def check(request: TuningCreate) -> None:
    """Rules across fields that the schema alone cannot state; Invalid names the field."""
    metrics = request.trainer.metric_names()
    if request.objective.metric not in metrics:
        raise _invalid(
            "objective.metric",
            f"The trainer computes {', '.join(metrics)}; the objective must be one of them "
            "(add it to trainer.metrics)",
        )
    fixed = set(request.space) & set(request.trainer.params)
    if fixed:
        raise _invalid(
            "space",
            f"{', '.join(sorted(fixed))} is both searched and fixed in trainer.params",
        )
    if request.sampler.type == "grid":
        grid(request.space)
    elif request.budget.n_trials is None and request.budget.timeout_seconds is None:
        raise _invalid("budget", "Give budget.n_trials or budget.timeout_seconds (or both)")


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """Params of one trial, sampled (or taken from an enqueued trial) for every dimension."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, FloatParam):
            params[name] = trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            params[name] = trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
        else:
            params[name] = trial.suggest_categorical(name, p.choices)
    return params


def sampler(request: TuningCreate) -> optuna.samplers.BaseSampler:
    """The sampler the request names, seeded."""
    import optuna

    spec, seed = request.sampler, request.seed
    startup: dict[str, Any] = (
        {} if spec.n_startup_trials is None else {"n_startup_trials": spec.n_startup_trials}
    )
    if spec.type == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **startup)
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.type == "grid":
        return optuna.samplers.GridSampler(grid(request.space), seed=seed)
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **startup)


def pruner(request: TuningCreate) -> optuna.pruners.BasePruner:
    """The pruner the request names (``NopPruner`` for ``none``)."""
    import optuna

    spec = request.pruner
    if spec.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps
        )
    if spec.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource or "auto", reduction_factor=spec.reduction_factor
        )
    return optuna.pruners.NopPruner()


def direction(request: TuningCreate) -> optuna.study.StudyDirection:
    """Optuna's direction of the objective."""
    from optuna.study import StudyDirection

    if request.objective.direction == "maximize":
        return StudyDirection.MAXIMIZE
    return StudyDirection.MINIMIZE


def importances(study: optuna.Study, seed: int = 0) -> dict[str, float] | None:
    """fANOVA importances of the study's params (Hutter et al., 2014, "An Efficient Approach
    for Assessing Hyperparameter Importance"), or None before two trials completed."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    try:
        values = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        # A statistic about the search, not its result: a degenerate set of trials (every
        # complete trial with the same params, say) leaves it out rather than failing.
        log.warning("no parameter importances for study %s: %s", study.study_name, exc)
        return None
    return {k: float(v) for k, v in values.items()}
