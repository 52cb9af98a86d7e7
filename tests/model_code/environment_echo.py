"""A model answering, per row, what its process sees: two variables, and the BLAS library's thread count."""

import os

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel
from threadpoolctl import threadpool_info


class EnvironmentEcho(PythonModel):
    def predict(self, context, model_input, params=None):
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        row = {
            "greeting": os.environ.get("GREETING", ""),
            "api_token": os.environ.get("API_TOKEN", ""),
            "blas_threads": str(min(blas, default=0)),
        }
        return pd.DataFrame([row] * len(model_input))


mlflow.models.set_model(EnvironmentEcho())
