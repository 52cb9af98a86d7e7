"""A model answering a label and a score per row (a DataFrame), which refuses negative inputs."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class LabelScore(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["x"] < 0).any():
            raise ValueError("x must not be negative")
        labels = ["high" if x >= 10 else "low" for x in model_input["x"]]
        return pd.DataFrame({"label": labels, "score": model_input["x"] * 2})


mlflow.models.set_model(LabelScore())
