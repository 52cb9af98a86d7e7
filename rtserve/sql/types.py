"""Databricks SQL type syntax (`STRUCT<label:STRING, score:DOUBLE>`), parsed and written as DuckDB's.

`ai_query`'s `returnType` is written as on Databricks; Spark reads that syntax itself, DuckDB wants its
own (`STRUCT("label" VARCHAR, "score" DOUBLE)`). `to_duckdb` translates one into the other and
raises `ReturnTypeError`, naming the type and what is wrong with it, for anything else.
"""

from __future__ import annotations

import re

# Databricks' scalar type names (and their aliases) and the DuckDB type each one becomes.
SCALARS = {
    "STRING": "VARCHAR",
    "VARCHAR": "VARCHAR",
    "CHAR": "VARCHAR",
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "TINYINT",
    "BYTE": "TINYINT",
    "SMALLINT": "SMALLINT",
    "SHORT": "SMALLINT",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "LONG": "BIGINT",
    "FLOAT": "FLOAT",
    "REAL": "FLOAT",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
    "TIMESTAMP_LTZ": "TIMESTAMPTZ",
    "TIMESTAMP_NTZ": "TIMESTAMP",
    "BINARY": "BLOB",
    "VARIANT": "JSON",
}
DECIMALS = ("DECIMAL", "DEC", "NUMERIC")
# Tokens: backquoted names, words, integers and the punctuation of the syntax.
TOKEN = re.compile(r"\s*(`(?:[^`]|``)*`|[A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),:])")


class ReturnTypeError(ValueError):
    """A `returnType` that is not a Databricks SQL type this translator knows."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(
            f"ai_query: returnType {text!r} is not a Databricks SQL type: {reason}. Write it as on Databricks, "
            "e.g. 'DOUBLE', 'ARRAY<STRING>', 'MAP<STRING, DOUBLE>' or 'STRUCT<label:STRING, score:DOUBLE>'."
        )


def to_duckdb(text: str) -> str:
    """The DuckDB type for a Databricks type, e.g. `ARRAY<STRUCT<a:INT>>` -> `STRUCT("a" INTEGER)[]`."""
    parser = _Parser(text)
    duckdb_type = parser.type()
    if parser.peek() is not None:
        raise ReturnTypeError(text, f"unexpected {parser.peek()!r} after the type")
    return duckdb_type


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        position, stripped = 0, text.rstrip()
        while position < len(stripped):
            match = TOKEN.match(stripped, position)
            if match is None:
                raise ReturnTypeError(text, f"unexpected {stripped[position:].strip()[:1]!r}")
            self.tokens.append(match.group(1))
            position = match.end()
        if not self.tokens:
            raise ReturnTypeError(text, "it is empty")
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise ReturnTypeError(self.text, f"it ends where {repr(expected) if expected else 'a type'} was expected")
        if expected is not None and token != expected:
            raise ReturnTypeError(self.text, f"expected {expected!r}, found {token!r}")
        self.index += 1
        return token

    def type(self) -> str:
        name = self.take().upper()
        if name == "ARRAY":
            self.take("<")
            element = self.type()
            self.take(">")
            return f"{element}[]"
        if name == "MAP":
            self.take("<")
            key = self.type()
            self.take(",")
            value = self.type()
            self.take(">")
            return f"MAP({key}, {value})"
        if name == "STRUCT":
            return self.struct()
        if name in DECIMALS:
            return self.decimal()
        if name not in SCALARS:
            raise ReturnTypeError(self.text, f"unknown type {name!r}")
        if name in ("VARCHAR", "CHAR"):  # a length, which DuckDB's VARCHAR has no use for
            self.take("(")
            self.integer()
            self.take(")")
        return SCALARS[name]

    def decimal(self) -> str:
        if self.peek() != "(":
            return "DECIMAL(10,0)"  # Databricks' default precision and scale
        self.take("(")
        precision, scale = self.integer(), 0
        if self.peek() == ",":
            self.take(",")
            scale = self.integer()
        self.take(")")
        if not 1 <= precision <= 38 or scale > precision:
            raise ReturnTypeError(self.text, f"DECIMAL({precision},{scale}) needs 1 <= precision <= 38, scale <= it")
        return f"DECIMAL({precision},{scale})"

    def struct(self) -> str:
        self.take("<")
        fields: list[str] = []
        while self.peek() != ">":
            if fields:
                self.take(",")
            name = self.take()
            if name in "<>(),:":
                raise ReturnTypeError(self.text, f"expected a field name, found {name!r}")
            name = name[1:-1].replace("``", "`") if name.startswith("`") else name
            if self.peek() == ":":
                self.take(":")
            quoted = '"' + name.replace('"', '""') + '"'
            fields.append(f"{quoted} {self.type()}")
        self.take(">")
        if not fields:
            raise ReturnTypeError(self.text, "a STRUCT needs at least one field")
        return f"STRUCT({', '.join(fields)})"

    def integer(self) -> int:
        token = self.take()
        if not token.isdigit():
            raise ReturnTypeError(self.text, f"expected a number, found {token!r}")
        return int(token)
