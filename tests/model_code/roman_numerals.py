"""A model whose predict imports `roman`, a small pure-Python package the server's environment lacks."""

import mlflow
from mlflow.pyfunc import PythonModel


class RomanNumerals(PythonModel):
    def predict(self, context, model_input, params=None):
        import roman  # only in the model's own environment

        return [roman.toRoman(int(x)) for x in model_input["x"]]


mlflow.models.set_model(RomanNumerals())
