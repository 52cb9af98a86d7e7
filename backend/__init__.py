"""rtserve backend: real-time serving of MLflow models behind the Databricks serving API."""
