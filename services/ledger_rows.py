"""How ledger rows are written: bulk upserts that ignore duplicates, per-row updates by id.

Re-running a period, a repeated row or two processes racing all land on the same unique keys;
`insert_ignore` lets the database decide which insert wins, without a read first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, text
from sqlalchemy.orm import Session

from services.models import Base

T = TypeVar("T")


class EncodedJSON(str):
    """JSON text made ready for a JSON column: written as it is, not encoded again."""


def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], unique: Sequence[str]
) -> int:
    """Insert the rows whose unique key is new (every row has the same columns); how many
    were new."""
    if not rows:
        return 0
    table: Table = model.__table__  # type: ignore[assignment]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = ", ".join(rows[0])
        source, params = _pg_recordset(connection, table, list(rows[0]), rows)
        result = connection.execute(
            text(
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {source} "
                f"ON CONFLICT ({', '.join(unique)}) DO NOTHING"
            ),
            params,
        )
    else:  # SQLite's executemany loops in C
        columns = list(rows[0])
        result = connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(unique)}) DO NOTHING",
            _sqlite_values(connection, table, columns, rows),
        )
    return result.rowcount


def update_by_id(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Per-row changes ({"id": ..., column: value, ...}), one statement per set of columns."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[assignment]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(set(row) - {"id"})), []).append(row)
    connection = session.connection()
    stamp = {"updated_at": datetime.now(UTC)} if "updated_at" in table.c else {}
    for names, group in groups.items():
        if connection.dialect.name == "postgresql":
            source, params = _pg_recordset(connection, table, ["id", *names], group)
            assignments = [f"{name} = changes.{name}" for name in names]
            assignments += [f"{name} = :{name}_now" for name in stamp]
            connection.execute(
                text(
                    f"UPDATE {table.name} SET {', '.join(assignments)} FROM {source} "
                    f"WHERE {table.name}.id = changes.id"
                ),
                params | {f"{name}_now": value for name, value in stamp.items()},
            )
        else:
            assigned = [*names, *stamp]
            connection.exec_driver_sql(
                f"UPDATE {table.name} SET {', '.join(f'{name} = ?' for name in assigned)} "
                "WHERE id = ?",
                _sqlite_values(
                    connection,
                    table,
                    [*assigned, "id"],
                    [row | stamp for row in group] if stamp else group,
                ),
            )


def _pg_recordset(
    connection: Connection, table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]
) -> tuple[str, dict[str, str]]:
    """The rows as one JSON parameter, read back as a relation named `changes`: one statement
    whatever the number of rows, and its text the same for any number (PostgreSQL and psycopg
    plan and parse it once), where an executemany is a round trip per row. JSON made ready
    (EncodedJSON) is put in as it is."""
    columns = ", ".join(
        f"{name} {table.c[name].type.compile(connection.dialect)}" for name in names
    )
    data = "[" + ", ".join([_row_json(row, names) for row in rows]) + "]"
    return f"json_to_recordset(CAST(:rows AS json)) AS changes ({columns})", {"rows": data}


def _row_json(row: dict[str, Any], names: Sequence[str]) -> str:
    made = [name for name in names if type(row[name]) is EncodedJSON]
    if not made:
        return json.dumps({name: row[name] for name in names}, default=_iso)
    members = [f'"{name}": {row[name]}' for name in made]
    if rest := {name: row[name] for name in names if name not in made}:
        members.append(json.dumps(rest, default=_iso)[1:-1])
    return "{" + ", ".join(members) + "}"


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a ledger value")


def _sqlite_values(
    connection: Connection, table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows as the driver's parameter tuples, each value made ready by its column's type
    (JSON text, dates): what SQLAlchemy does per row of an executemany, without its per-row
    work for statements it would compile (a third of the time of a chunk's insert)."""
    dialect = connection.dialect
    processors = [
        (i, processor)
        for i, name in enumerate(names)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    # The value last made ready per column: a chunk's rows share their time stamp.
    made: dict[int, tuple[Any, Any]] = {}
    values = []
    for row in rows:
        params = [row[name] for name in names]
        for i, processor in processors:
            value = params[i]
            if type(value) is EncodedJSON:
                continue
            last = made.get(i)
            if last is None or last[0] is not value:
                last = made[i] = (value, processor(value))
            params[i] = last[1]
        values.append(tuple(params))
    return values


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items, read lazily (itertools.batched is 3.12+)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
