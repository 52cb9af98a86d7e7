"""A model whose loading fails the way a real one does: a missing dependency discovered at load time."""

import mlflow
from mlflow.pyfunc import PythonModel


class FailingLoad(PythonModel):
    def load_context(self, context):
        raise RuntimeError("cannot load: the weights file weights.bin is missing")

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(FailingLoad())
