"""A model that takes `x` seconds per request: for timeouts, queues and autoscaling under load."""

import time

import mlflow
from mlflow.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(float(model_input["x"].iloc[0]))
        return model_input["x"].tolist()


mlflow.models.set_model(Slow())
