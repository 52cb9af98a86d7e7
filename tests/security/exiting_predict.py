"""A model whose process exits in the middle of `predict` when asked (x < 0), like a native crash."""

import os

import mlflow
from mlflow.pyfunc import PythonModel


class ExitingPredict(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["x"] < 0).any():
            os._exit(7)
        return (model_input["x"] * 2).tolist()


mlflow.models.set_model(ExitingPredict())
