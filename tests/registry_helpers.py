"""Register small code-defined models (MLflow's models-from-code) for the integration tests."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

MODEL_CODE = Path(__file__).parent / "model_code"


def register_code_model(name: str, code_file: str, signature: ModelSignature | None = None) -> str:
    if signature is None:
        frame = pd.DataFrame({"x": [1.0, 2.0]})
        signature = infer_signature(frame, [2.0, 4.0])
    # By name, on whichever backend the client points at: an experiment id set earlier may belong to another.
    mlflow.set_experiment("rtserve-tests")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE / code_file),
            signature=signature,
            input_example=pd.DataFrame({"x": [1.0]}),
            registered_model_name=name,
            pip_requirements=[f"mlflow=={mlflow.__version__}"],
        )
    return str(info.registered_model_version)


def params_signature() -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("double", "x")]),
        outputs=Schema([ColSpec("double")]),
        params=ParamSchema([ParamSpec("factor", "double", 1.0)]),
    )
