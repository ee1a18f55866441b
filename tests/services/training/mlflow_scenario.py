"""A plain MLflow script, run unchanged against Inwire by the MLflow-compatibility tests.

It reads MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN from the environment like any MLflow
script, trains a scikit-learn model under ``mlflow.autolog()``, logs and reloads it,
searches runs and (with ``--register``) registers, aliases, stages and reloads the model.
It prints one JSON line of what it saw, for the test to check.
"""

from __future__ import annotations

import json
import sys

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main() -> None:
    experiment = sys.argv[1]
    register = "--register" in sys.argv
    out: dict[str, object] = {}
    mlflow.set_experiment(experiment)
    mlflow.autolog()
    X, y = load_iris(return_X_y=True)
    with mlflow.start_run() as run:
        model = LogisticRegression(max_iter=300).fit(X, y)
        mlflow.log_param("extra", "1")
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("team", "risk")
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    out["run_id"] = run.info.run_id
    out["model_uri"] = info.model_uri
    expected = model.predict(X).tolist()
    out["same_predictions"] = mlflow.sklearn.load_model(info.model_uri).predict(X).tolist() == (
        expected
    )
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    out["pyfunc_predictions"] = pyfunc.predict(X[:3]).tolist() == expected[:3]
    client = MlflowClient()
    finished = client.get_run(run.info.run_id)
    out["status"] = finished.info.status
    out["params"] = {k: finished.data.params[k] for k in ("extra", "max_iter")}
    out["metrics"] = sorted(finished.data.metrics)
    out["tags"] = {k: v for k, v in finished.data.tags.items() if k == "team"}
    out["history"] = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="metrics.training_score > 0.5 and params.extra = '1'",
        order_by=["metrics.training_score DESC"],
    )
    out["search"] = runs["run_id"].tolist()
    out["search_none"] = len(
        mlflow.search_runs(experiment_names=[experiment], filter_string="metrics.loss > 5")
    )
    out["artifacts"] = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    if register:
        name = f"{experiment}-model"
        version = mlflow.register_model(info.model_uri, name)
        out["version"] = version.version
        loaded = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        out["registered_predictions"] = loaded.predict(X).tolist() == expected
        client.set_registered_model_alias(name, "champion", version.version)
        out["alias"] = client.get_model_version_by_alias(name, "champion").version
        champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        out["alias_predictions"] = champion.predict(X[:3]).tolist() == expected[:3]
        staged = client.transition_model_version_stage(name, version.version, "Production")
        out["stage"] = staged.current_stage
        out["models"] = [m.name for m in client.search_registered_models()]
        out["versions"] = [
            (v.name, v.version, v.run_id) for v in client.search_model_versions(f"name='{name}'")
        ]
    print(json.dumps(out))  # noqa: T201 - the test reads this line


if __name__ == "__main__":
    main()
