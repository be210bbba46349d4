"""A real refusal by the database, for tests of the writer's permanent-error path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

REFUSED_VALUE = 666.25  # a valid pm10 value no other test sends


@contextmanager
def readings_refusing(db: psycopg.Connection, value: float = REFUSED_VALUE) -> Iterator[str]:
    """Make ``readings`` refuse any row of ``value`` with a trigger; yield the text it raises.

    The trigger and its function outlive the per-test TRUNCATE, so they are dropped on exit.
    """
    message = f"reading value {value} refused by test trigger"
    db.execute(psycopg.sql.SQL(
        "CREATE FUNCTION test_refuse_value() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.value = {value} THEN RAISE EXCEPTION {message}; END IF; RETURN NEW; END $$"
    ).format(value=psycopg.sql.Literal(value), message=psycopg.sql.Literal(message)))
    db.execute("CREATE TRIGGER test_refuse_value BEFORE INSERT ON readings"
               " FOR EACH ROW EXECUTE FUNCTION test_refuse_value()")
    try:
        yield message
    finally:
        db.execute("DROP TRIGGER test_refuse_value ON readings")
        db.execute("DROP FUNCTION test_refuse_value()")


@contextmanager
def table_refusing_all(db: psycopg.Connection, table: str, raise_clause: str) -> Iterator[None]:
    """Make ``table`` refuse every insert with ``RAISE EXCEPTION <raise_clause>`` (a trigger)."""
    name = psycopg.sql.Identifier(f"test_refuse_all_{table}")
    db.execute(psycopg.sql.SQL(
        "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION {clause}; END $$"
    ).format(name=name, clause=psycopg.sql.SQL(raise_clause)))
    db.execute(psycopg.sql.SQL("CREATE TRIGGER {name} BEFORE INSERT ON {table}"
                               " FOR EACH ROW EXECUTE FUNCTION {name}()")
               .format(name=name, table=psycopg.sql.Identifier(table)))
    try:
        yield
    finally:
        db.execute(psycopg.sql.SQL("DROP TRIGGER {name} ON {table}")
                   .format(name=name, table=psycopg.sql.Identifier(table)))
        db.execute(psycopg.sql.SQL("DROP FUNCTION {name}()").format(name=name))
