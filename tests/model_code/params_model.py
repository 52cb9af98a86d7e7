"""A model that uses inference params: multiplies x by `factor`."""

import mlflow
from mlflow.pyfunc import PythonModel


class ScaledByParam(PythonModel):
    def predict(self, context, model_input, params=None):
        factor = (params or {}).get("factor", 1.0)
        return [float(x) * factor for x in model_input["x"]]


mlflow.models.set_model(ScaledByParam())
