"""A model that takes a few seconds to load: keeps a rollout in progress long enough to observe it."""

import time

import mlflow
from mlflow.pyfunc import PythonModel


class SlowLoad(PythonModel):
    def load_context(self, context):
        time.sleep(4)

    def predict(self, context, model_input, params=None):
        return model_input["x"].tolist()


mlflow.models.set_model(SlowLoad())
