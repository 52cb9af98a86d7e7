"""The demo model: scikit-learn iris classifiers, registered with the stock MLflow client."""

from __future__ import annotations

import mlflow
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

DEMO_MODEL = "iris-classifier"


def iris_frame() -> tuple[pd.DataFrame, pd.Series]:
    data = load_iris(as_frame=True)
    return data.data, data.target


def register_demo_model(tracking_uri: str, name: str = DEMO_MODEL, versions: int = 2) -> list[str]:
    """Train and register `versions` versions (each less regularised than the last) with an input example."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # the same server's registry, whatever another client set before
    mlflow.set_experiment("rtserve-demo")
    features, target = iris_frame()
    registered = []
    for index in range(versions):
        model = LogisticRegression(C=0.05 * (10**index), max_iter=500).fit(features, target)
        with mlflow.start_run(run_name=f"iris-v{index + 1}"):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(features, model.predict(features)),
                input_example=features.head(3),
                registered_model_name=name,
                # Explicit requirements: MLflow's inference of them runs a subprocess for seconds.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
            )
        registered.append(str(info.registered_model_version))
    return registered
