"""Error answers in the Databricks envelope, `{"error_code": ..., "message": ...}`.

The gateway may add `details` (the request id); a replica knows only the code and the message.
"""

from __future__ import annotations

import json

from rtserve.server.worker.types import InvocationResult

JSON = "application/json"


def error_result(error_code: str, message: str, status: int = 400) -> InvocationResult:
    """An error answer with the given code, message and HTTP status."""
    body = json.dumps({"error_code": error_code, "message": message})
    return InvocationResult(status=status, body=body.encode(), content_type=JSON)
