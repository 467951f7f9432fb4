"""`id_in`: the hot statements' "one of these ids" (webhook_admin/models/id_lists.py). It must
select exactly the listed ids on both databases, and on PostgreSQL be one statement text with
one parameter whatever the list's length (so psycopg caches it and the server prepares it)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Column, MetaData, String, Table, event, insert, select

from webhook_admin.extensions import db
from webhook_admin.models.id_lists import id_in

STORED = range(1, 121)
TEXT_IDS = [f"evt_{i}".ljust(64, "_") for i in STORED]  # as long as the column allows
probe = Table("id_list_probe", MetaData(), Column("id", BigInteger, primary_key=True))
SELECT_LISTED = select(probe.c.id).where(id_in(probe.c.id, "ids"))
# Event ids are text: the array takes the column's type (a BIGINT[] failed there).
text_probe = Table("id_list_text_probe", MetaData(), Column("id", String(64), primary_key=True))
SELECT_LISTED_TEXT = select(text_probe.c.id).where(id_in(text_probe.c.id, "ids"))


@pytest.fixture
def stored(app):
    probe.create(db.engine)
    text_probe.create(db.engine)
    with db.engine.begin() as connection:
        connection.execute(insert(probe), [{"id": i} for i in STORED])
        connection.execute(insert(text_probe), [{"id": i} for i in TEXT_IDS])
    yield
    probe.drop(db.engine)
    text_probe.drop(db.engine)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(min_value=-5, max_value=2**63 - 1) | st.sampled_from(STORED), max_size=150)
)
def test_exactly_the_listed_ids_are_selected(stored, ids):
    with db.engine.connect() as connection:
        found = connection.execute(SELECT_LISTED, {"ids": ids}).scalars().all()
    assert sorted(found) == sorted(set(ids) & set(STORED))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8)
        | st.sampled_from(TEXT_IDS)
        | st.sampled_from(TEXT_IDS).map(lambda stored_id: stored_id + "x"),  # longer than 64
        max_size=80,
    )
)
def test_exactly_the_listed_text_ids_are_selected(stored, ids):
    with db.engine.connect() as connection:
        found = connection.execute(SELECT_LISTED_TEXT, {"ids": ids}).scalars().all()
    assert sorted(found) == sorted(set(ids) & set(TEXT_IDS))


def test_the_statement_text_does_not_grow_with_the_list_on_postgresql(stored):
    sent = []
    with db.engine.connect() as connection:
        listener = lambda *args: sent.append((args[2], args[3]))  # noqa: E731 (statement, params)
        event.listen(connection, "before_cursor_execute", listener)
        for count in (2, 80):
            assert (
                len(connection.execute(SELECT_LISTED, {"ids": list(STORED)[:count]}).all()) == count
            )
    (short, short_params), (long, long_params) = sent
    if db.engine.dialect.name == "postgresql":
        assert short == long and "= ANY" in short
        assert (len(short_params), len(long_params)) == (1, 1)
    else:  # SQLite has no arrays: an IN list, one parameter per id
        assert "IN (" in short and (len(short_params), len(long_params)) == (2, 80)
