"""`id_in(column, name)`: "column is one of the ids bound as `name`" for the hot statements
that take a list of ids (a claim of a batch, the writer's reads and updates of it).

On PostgreSQL it is `column = ANY(:name::<column's type>[])`, one parameter whatever the list's
length; elsewhere (SQLite) the expanding `column IN (...)`. An expanding IN is rendered into
the SQL on every execution, with one parameter per id: in scenario 2 (issue 16) that
rendering and psycopg's conversion of the new text (it caches no statement of over 50
parameters) were ~5 % of the worker's CPU, and PostgreSQL parsed and planned each new text
again. With one text per statement, psycopg caches its conversion and, from the fifth run on
a connection, prepares it on the server. A primary key or indexed column matched by `= ANY`
is read through its index as an `IN` list is (the plans are checked in
tests/delivery/test_hot_plans.py)."""

from __future__ import annotations

from sqlalchemy import Boolean, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class IdIn(ColumnElement):
    """Both forms are built here, once; the dialect's compiler renders one of them."""

    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: SQLite's WHERE must not add "= 1" to it
    inherit_cache = True
    _traverse_internals = [
        ("as_array", InternalTraversal.dp_clauseelement),
        ("as_list", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column, name: str):
        # A text column's array is cast unbounded: a cast to VARCHAR(64)[] would cut a longer
        # id to 64 characters, and the cut one could match a stored id.
        item_type = String() if isinstance(column.type, String) else column.type
        self.as_array = column == any_(bindparam(name, type_=ARRAY(item_type)))
        self.as_list = column.in_(bindparam(name, expanding=True))


def id_in(column, name: str) -> IdIn:
    return IdIn(column, name)


@compiles(IdIn)
def _as_list(element: IdIn, compiler, **kw) -> str:
    return compiler.process(element.as_list, **kw)


@compiles(IdIn, "postgresql")
def _as_array(element: IdIn, compiler, **kw) -> str:
    return compiler.process(element.as_array, **kw)
