"""Spark SQL statements rewritten so that `ai_query(..., returnType => 'T')` calls a function of type T:
only the call changes, and literals, comments and backquoted names are read as Spark reads them."""

from __future__ import annotations

import pytest

from rtserve.sql.rewrite import TypedCall, rewrite
from rtserve.sql.types import ReturnTypeError

pytestmark = pytest.mark.unit


def typed(call: TypedCall) -> str:
    return f"f_{call.return_type.split('<')[0].lower()}_{str(call.fail_on_error).lower()}"


@pytest.mark.parametrize(
    ("statement", "rewritten"),
    [
        (
            "SELECT ai_query('e', named_struct('x', x), returnType => 'DOUBLE') AS p FROM t",
            "SELECT f_double_true('e', named_struct('x', x)) AS p FROM t",
        ),
        (  # any case, backquoted; positional returnType and failOnError, as the VARIANT function takes them
            "SELECT `AI_Query`('e', t.x, 'STRUCT<a:INT>', false)",
            "SELECT f_struct_false('e', t.x)",
        ),
        (  # named arguments in any order, a nested call, a string with a parenthesis, a comment left as it is
            "SELECT ai_query(failOnError => false, returnType => 'ARRAY<INT>', endpoint => 'e',\n"
            "  request => named_struct('a(', ai_query('f', x, returnType => 'BIGINT'))) -- ai_query('e', x, 'INT')\n"
            "FROM t",
            "SELECT f_array_false(endpoint => 'e',\n"
            "  request => named_struct('a(', f_bigint_true('f', x))) -- ai_query('e', x, 'INT')\n"
            "FROM t",
        ),
        (  # adjacent literals are one, as Spark reads them; a block comment and a `]` inside the arguments
            "SELECT ai_query('e', array(x)[0] /* ) */, returnType => 'STRUCT<a: ' 'DOUBLE>')",
            "SELECT f_struct_true('e', array(x)[0] /* ) */)",
        ),
    ],
)
def test_a_call_with_a_literal_return_type_calls_a_function_of_that_type(statement: str, rewritten: str):
    assert rewrite(statement, "ai_query", typed) == rewritten


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT ai_query('e', x), ai_query('e', x, failOnError => false) FROM t",  # no returnType: the VARIANT
        "SELECT db.ai_query('e', x, returnType => 'DOUBLE')",  # another function
        "SELECT 'ai_query(''e'', x, returnType => ''DOUBLE'')', `ai_query` FROM t",  # a string, a column
        "SELECT ai_query('e', x, returnType => 'DOUBLE'",  # unbalanced: Spark's parser says so
        "SELECT 'unterminated",
    ],
)
def test_everything_else_is_left_byte_for_byte(statement: str):
    assert rewrite(statement, "ai_query", typed) == statement


def test_a_function_registered_under_another_name_is_the_one_rewritten():
    statement = "SELECT score('e', x, returnType => 'DOUBLE'), ai_query('e', x, returnType => 'DOUBLE')"
    assert (
        rewrite(statement, "score", typed) == "SELECT f_double_true('e', x), ai_query('e', x, returnType => 'DOUBLE')"
    )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "SELECT ai_query('e', x, returnType => concat('DOU', 'BLE'))",
            r"returnType must be a string literal, e\.g\. returnType => 'DOUBLE' .* not concat\('DOU', 'BLE'\)",
        ),
        (
            "SELECT ai_query('e', x, returnType => type_column)",
            r"returnType must be a string literal.* not type_column",
        ),
        (
            "SELECT ai_query('e', x, returnType => 'DOUBLE', failOnError => flag)",
            r"failOnError must be true or false when returnType is given .* not flag",
        ),
    ],
)
def test_a_return_type_that_is_not_a_literal_fails_naming_it(statement: str, message: str):
    with pytest.raises(ValueError, match=message):
        rewrite(statement, "ai_query", typed)


def test_a_bad_return_type_fails_with_the_translators_message():
    with pytest.raises(ReturnTypeError, match=r"returnType 'ARRAY<INT' is not a Databricks SQL type"):
        rewrite("SELECT ai_query('e', x, returnType => 'ARRAY<INT')", "ai_query", typed)
