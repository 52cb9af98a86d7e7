"""Score one request against a loaded pyfunc model, with MLflow scoring-server semantics.

`score()` is framework-free: bytes and a content type in, an `InvocationResult` out, never an
exception. Parsing, signature enforcement, prediction and JSON serialization are MLflow's own
(`mlflow.pyfunc.scoring_server.invocations`); this module only adapts errors to the Databricks
envelope `{"error_code", "message"}` and keeps stack traces in the log, not in the body. Inputs
with more columns than the replica accepts (`max_input_columns`, or the signature's width) are
refused before MLflow parses them (`backend.worker.limits`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from rtserve.server.worker import limits
from rtserve.server.worker.errors import JSON, error_result
from rtserve.server.worker.types import InvocationResult

logger = logging.getLogger(__name__)

ACCEPTED_CONTENT_TYPES = tuple(scoring_server.CONTENT_TYPES)

# Error codes a client can act on; any other code raised while scoring becomes BAD_REQUEST, because
# the failure happened on this request's input (a 500 would blame the service).
_CLIENT_ERROR_CODES = frozenset({"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "INVALID_STATE"})

MAX_MESSAGE_CHARS = 2000

# MLflow echoes the whole input into some messages; the client already has it and the log must not
# grow with request size, so those echoes are cut out (see `_clean_message`).
_PREDICT_PREFIX = re.compile(r"^Failed to predict data '.*?'\. \nError: ", re.DOTALL)
_SCHEMA_DATA_ECHO = re.compile(r"Failed to enforce schema of data '.*?' with schema '", re.DOTALL)
_INPUT_ECHO = re.compile(r"\nInput: \n.*$", re.DOTALL)
# The start of the message MLflow uses when the model's predict raised something of its own.
_PREDICT_FAILURE = "Encountered an unexpected error while evaluating the model"


def score(
    body: bytes,
    content_type: str | None,
    model: Any,
    input_schema: Any = None,
    *,
    max_input_columns: int = limits.DEFAULT_MAX_INPUT_COLUMNS,
) -> InvocationResult:
    """Score `body` on `model` and return the HTTP-ready result (200 with predictions, or 4xx).

    `input_schema` is `model.metadata.get_input_schema()`; pass it when scoring many requests to
    avoid recomputing it, otherwise it is read from the model. `max_input_columns` is the server's
    limit on input columns (the signature may allow more; see `backend.worker.limits`).
    """
    mime_type = (content_type or "").split(";", 1)[0].strip().lower()
    if mime_type not in ACCEPTED_CONTENT_TYPES:
        return _unsupported_content_type(content_type)
    if input_schema is None:
        input_schema = model.metadata.get_input_schema()
    decoded: dict = {}
    try:
        data = _decode_once(body, mime_type)
        # Before MLflow parses it: a very wide input costs seconds to parse (see backend.worker.limits).
        decoded = data if isinstance(data, dict) else {}
        if _is_bare_split(decoded):
            return error_result("BAD_REQUEST", BARE_SPLIT_MESSAGE)
        too_wide = limits.check(body, content_type, input_schema, decoded, max_columns=max_input_columns)
        if too_wide is not None:
            return too_wide
        response = scoring_server.invocations(data, content_type, model, input_schema)
    except MlflowException as exc:
        message = _from_mlflow_exception(exc)
        hint = _positional_rows_hint(decoded, input_schema)
        return _with_hint(message, hint) if hint else message
    except RecursionError:
        return error_result("MALFORMED_REQUEST", "The request body is nested too deeply to parse.")
    except MemoryError:
        logger.exception("Out of memory while scoring a request")
        return error_result("TEMPORARILY_UNAVAILABLE", "The replica ran out of memory; retry.", status=503)
    except Exception as exc:
        # Not an MlflowException: raised while parsing the input or serializing the model's output.
        logger.warning("Could not score the request", exc_info=True)
        return error_result("BAD_REQUEST", f"Could not score the request: {_describe(exc)}")
    if response.status != 200:
        # MLflow answers some content-type problems (charset, parameters) with a plain-text 415.
        return error_result("BAD_REQUEST", _clean_message(response.response), status=response.status)
    return InvocationResult(status=200, body=response.response.encode(), content_type=response.mimetype)


INPUT_KEYS = frozenset({"dataframe_split", "dataframe_records", "instances", "inputs"})
BARE_SPLIT_MESSAGE = (
    "The body is a data frame in pandas' split orientation without its key (the form MLflow took before 2.0). "
    'Wrap it: {"dataframe_split": {"columns": [...], "data": [[...]]}}; dataframe_records, instances and '
    "inputs are the other accepted forms."
)


def _is_bare_split(decoded: dict) -> bool:
    """`{"columns": ..., "data": ...}` (and maybe "index") with none of the keys MLflow 2 reads."""
    return {"columns", "data"} <= decoded.keys() <= {"columns", "data", "index"}


def _positional_rows_hint(decoded: dict, input_schema: Any) -> str:
    """What to send instead, when rows without column names (`inputs`/`instances` as lists) met a
    signature of named columns: MLflow's own message only says that every column is missing."""
    rows = next((decoded[key] for key in ("inputs", "instances") if key in decoded), None)
    if not (isinstance(rows, list) and rows and isinstance(rows[0], list)):
        return ""
    if input_schema is None or input_schema.is_tensor_spec() or not input_schema.has_input_names():
        return ""
    columns = input_schema.input_names()
    shown = ", ".join(map(str, columns[:8])) + (", ..." if len(columns) > 8 else "")
    return (
        f"This model's signature takes named columns ({shown}) and the rows sent have none: send "
        '{"dataframe_split": {"columns": [...], "data": [[...]]}} or {"dataframe_records": [{"column": value}]}.'
    )


def _with_hint(result: InvocationResult, hint: str) -> InvocationResult:
    error = json.loads(result.body)
    return error_result(error["error_code"], _truncate(f"{hint} ({error['message']})"), result.status)


def _decode_once(body: bytes, mime_type: str) -> bytes | dict:
    """Parse a JSON body here so MLflow, which would decode it twice, gets the dict.

    Bodies that do not decode to an object go to MLflow as bytes, so it reports them with its own
    messages.
    """
    if mime_type != JSON:
        return body
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    return parsed if isinstance(parsed, dict) else body


def _unsupported_content_type(content_type: str | None) -> InvocationResult:
    accepted = ", ".join(ACCEPTED_CONTENT_TYPES)
    got = f"'{content_type}'" if content_type else "no content type"
    return error_result("BAD_REQUEST", f"Unsupported content type: got {got}; accepted types: {accepted}.", 415)


def _from_mlflow_exception(exc: MlflowException) -> InvocationResult:
    message = _clean_message(exc.message)
    model_error = _model_error(exc)
    if model_error is not None:
        # MLflow replaces the model's own exception with a generic message; the model's message is
        # what tells the caller what went wrong, so it is appended (the traceback goes to the log).
        logger.warning("The model raised while predicting", exc_info=exc)
        message = f"{message} Error: {_describe(model_error)}"
    else:
        logger.info("Rejected a scoring request: %s", message)
    error_code = exc.error_code if exc.error_code in _CLIENT_ERROR_CODES else "BAD_REQUEST"
    return error_result(error_code, _truncate(message))


def _model_error(exc: MlflowException) -> BaseException | None:
    """The exception the model's predict raised, when MLflow wrapped it in its generic one.

    MLflow raises the wrapper inside its `except` block, so the model's exception is the context.
    Parsing errors chain exceptions too, hence the check of the wrapper's message.
    """
    if not exc.message.startswith(_PREDICT_FAILURE):
        return None
    return exc.__context__


def _clean_message(message: str) -> str:
    message = _PREDICT_PREFIX.sub("", message)
    message = _SCHEMA_DATA_ECHO.sub("Failed to enforce the input schema '", message)
    message = _INPUT_ECHO.sub("", message)
    # The MLflow 1.x -> 2.0 migration note is noise for rtserve's clients.
    message = message.replace(scoring_server.SCORING_PROTOCOL_CHANGE_INFO, "")
    return _truncate(message.strip())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _truncate(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + " ... (truncated)"
