"""Spark SQL's `ai_query(..., returnType => 'T')` calls, rewritten to call a function of type T.

Open-source Spark fixes a Python function's result type when the function is registered, and a
function cannot read its type from an argument's value (Databricks does that in its analyzer). So
`rtserve.sql.spark.register` rewrites each statement given to `spark.sql`: a call

    ai_query('iris', named_struct(...), returnType => 'DOUBLE', failOnError => false)

becomes `ai_query_<digest>('iris', named_struct(...))`, a function registered with the result type
of that `returnType` and `failOnError` (`function_for` names it). Only the call's name and those two
arguments change; the rest of the statement stays byte for byte as written. The statement is read
with sqlglot's Spark tokenizer, so string literals, comments, backquoted names and nested
parentheses are what Spark takes them for. A call without `returnType` is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot.dialects.spark import Spark
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from rtserve.sql.types import to_duckdb

# Databricks' positions of the optional arguments, when they are not named.
POSITIONS = {"returnType": 2, "failOnError": 3}
STRINGS = frozenset({TokenType.STRING, TokenType.RAW_STRING, TokenType.NATIONAL_STRING})
OPENING = {TokenType.L_PAREN: TokenType.R_PAREN, TokenType.L_BRACKET: TokenType.R_BRACKET}
CLOSING = frozenset(OPENING.values())


@dataclass(frozen=True)
class TypedCall:
    """What a rewritten call's function returns: `return_type` (Databricks' syntax), wrapped as
    `{result, errorMessage}` when `fail_on_error` is false."""

    return_type: str
    fail_on_error: bool


@dataclass
class _Argument:
    tokens: list[Token]
    name: str | None  # `name => value`
    value: list[Token]
    comma: Token | None = None  # the comma after it


def rewrite(statement: str, name: str, function_for: Callable[[TypedCall], str]) -> str:
    """`statement` with each `name(...)` call whose `returnType` is a string literal calling
    `function_for(its TypedCall)` instead, without its `returnType` and `failOnError` arguments.

    Raises ValueError, naming the argument, for a `returnType` or `failOnError` that is not a literal,
    and `ReturnTypeError` for a type that is not a Databricks SQL type: before anything runs.
    """
    if name.lower() not in statement.lower():
        return statement  # most statements: not worth a tokenizer's pass
    try:
        tokens = Spark().tokenize(statement)
    except TokenError:
        return statement  # not SQL that Spark reads either: its parser says what is wrong
    edits: list[tuple[int, int, str]] = []  # (first, last) character, inclusive, and the replacement
    for index in range(len(tokens)):
        if _is_call(tokens, index, name):
            edits += _typed_call_edits(statement, tokens, index, function_for)
    for first, last, text in sorted(edits, reverse=True):
        statement = statement[:first] + text + statement[last + 1 :]
    return statement


def _is_call(tokens: list[Token], index: int, name: str) -> bool:
    token = tokens[index]
    return (
        token.token_type not in STRINGS
        and token.text.lower() == name.lower()  # Spark's function names ignore case, backquoted or not
        and index + 1 < len(tokens)
        and tokens[index + 1].token_type == TokenType.L_PAREN
        and (index == 0 or tokens[index - 1].token_type != TokenType.DOT)  # db.ai_query is another function
    )


def _typed_call_edits(
    statement: str, tokens: list[Token], index: int, function_for: Callable[[TypedCall], str]
) -> list[tuple[int, int, str]]:
    arguments = _arguments(tokens, index + 1)
    if arguments is None:
        return []  # unbalanced: Spark's parser says so
    given = {name: _find(arguments, name) for name in POSITIONS}
    if given["returnType"] is None:
        return []  # no returnType: the VARIANT function, as registered
    return_type = _string_literal(statement, given["returnType"])
    to_duckdb(return_type)  # a type the translator does not know fails here, before any request
    fail_on_error = _boolean_literal(statement, given["failOnError"])
    edits = [(tokens[index].start, tokens[index].end, function_for(TypedCall(return_type, fail_on_error)))]
    removed = [argument for argument in given.values() if argument is not None]
    return edits + [_removal(statement, arguments, argument, removed) for argument in removed]


def _arguments(tokens: list[Token], opening: int) -> list[_Argument] | None:
    """The arguments of the call whose `(` is `tokens[opening]`, split at its top-level commas."""
    arguments: list[_Argument] = []
    current: list[Token] = []
    depth = 0
    for token in tokens[opening + 1 :]:
        if depth == 0 and token.token_type in (TokenType.COMMA, TokenType.R_PAREN):
            if current:
                arguments.append(_argument(current))
            if token.token_type == TokenType.R_PAREN:
                return arguments
            if arguments:
                arguments[-1].comma = token
            current = []
            continue
        depth += 1 if token.token_type in OPENING else -1 if token.token_type in CLOSING else 0
        current.append(token)
    return None


def _argument(tokens: list[Token]) -> _Argument:
    if len(tokens) > 2 and tokens[1].token_type == TokenType.FARROW and tokens[0].token_type not in STRINGS:
        return _Argument(tokens, tokens[0].text, tokens[2:])
    return _Argument(tokens, None, tokens)


def _find(arguments: list[_Argument], name: str) -> _Argument | None:
    for argument in arguments:
        if argument.name == name:
            return argument
    position = POSITIONS[name]
    if position < len(arguments) and all(argument.name is None for argument in arguments[: position + 1]):
        return arguments[position]
    return None


def _string_literal(statement: str, argument: _Argument) -> str:
    if not all(token.token_type in STRINGS for token in argument.value):
        raise ValueError(
            f"ai_query: returnType must be a string literal, e.g. returnType => 'DOUBLE' (Spark fixes a "
            f"function's result type before the query runs), not {_text(statement, argument.value)}."
        )
    return "".join(token.text for token in argument.value)  # Spark joins adjacent literals


def _boolean_literal(statement: str, argument: _Argument | None) -> bool:
    if argument is None:
        return True
    if len(argument.value) != 1 or argument.value[0].token_type not in (TokenType.TRUE, TokenType.FALSE):
        raise ValueError(
            "ai_query: failOnError must be true or false when returnType is given (it decides the result's "
            f"type), not {_text(statement, argument.value)}."
        )
    return argument.value[0].token_type == TokenType.TRUE


def _removal(
    statement: str, arguments: list[_Argument], argument: _Argument, removed: list[_Argument]
) -> tuple[int, int, str]:
    """The span that removes `argument` with one comma: the one before it, or (no argument before it is
    kept) the one after it, so that the spans of two removed arguments never overlap."""
    position = arguments.index(argument)
    before = arguments[position - 1].comma if position > 0 else None
    if before is not None and any(other not in removed for other in arguments[:position]):
        return (before.start, argument.tokens[-1].end, "")
    last = (argument.comma or argument.tokens[-1]).end
    while last + 1 < len(statement) and statement[last + 1] in " \t":  # the space after the comma
        last += 1
    return (argument.tokens[0].start, last, "")


def _text(statement: str, tokens: list[Token]) -> str:
    return statement[tokens[0].start : tokens[-1].end + 1]
