"""Inference tables: serving endpoints' requests logged to Delta Lake tables off the scoring path."""
