"""A model that refuses some inputs by raising, as user code does."""

import mlflow
from mlflow.pyfunc import PythonModel


class RaisingPredict(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        return (model_input["x"] * 2).tolist()


mlflow.models.set_model(RaisingPredict())
