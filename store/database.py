"""Opening the store: SQLite in the data dir (WAL, synchronous=FULL) or PostgreSQL by URL."""

from __future__ import annotations

import logging
from pathlib import Path

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from dispatchd.store.models import (
    MODELS,
    SCHEMA_VERSION,
    QueueMessageRow,
    SchemaVersion,
    UserRow,
    VhostRow,
    bind,
)

log = logging.getLogger("dispatchd.store")


class StoreError(Exception):
    """The store cannot be opened or used (a clear message for the operator)."""


def connect(url_or_dir: str) -> pw.Database:
    """Open (and create or check the schema of) the database; bind the models to it in the
    calling thread (the store's own thread binds them again: ``models.bind``)."""
    if url_or_dir.startswith(("postgres://", "postgresql://")):
        from playhouse.db_url import connect as connect_url

        db = connect_url(url_or_dir)
    else:
        path = Path(url_or_dir) / "dispatchd.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        db = pw.SqliteDatabase(
            str(path),
            pragmas={"journal_mode": "wal", "synchronous": "full", "foreign_keys": 0},
            check_same_thread=False,
        )
    bind(db)
    try:
        db.connect(reuse_if_open=True)
        with db.atomic():
            fresh = not db.table_exists(SchemaVersion._meta.table_name)
            if not fresh:
                (version,) = db.execute_sql("SELECT version FROM schema_version").fetchone()
                _upgrade(db, version)
            db.create_tables(MODELS, safe=True)
            if fresh:
                SchemaVersion.create(version=SCHEMA_VERSION)
    except pw.DatabaseError as exc:
        db.close()
        raise StoreError(f"cannot open the store at {url_or_dir}: {exc}") from exc
    return db


def wipe(url_or_dir: str) -> None:
    """Drop every table of the store (``dispatchd ctl reset``); the next connect starts afresh."""
    db = connect(url_or_dir)
    try:
        db.drop_tables(MODELS)
    finally:
        db.close()


def _upgrade(db: pw.Database, version: int) -> None:
    """Bring a store written by an older dispatchd up to ``SCHEMA_VERSION``, step by step."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"data was written with schema version {version}; "
            f"this dispatchd reads version {SCHEMA_VERSION}"
        )
    if version < 2:  # queue_messages.expires
        _add_column(db, QueueMessageRow, QueueMessageRow.expires)
    if version < 3:  # users, vhosts, permissions; the old users and vhosts tables were unused
        db.drop_tables([UserRow, VhostRow], safe=True)
        _add_column(db, SchemaVersion, SchemaVersion.initialised)
    # 4: policies and global parameters, new tables only (``create_tables`` makes them)
    if version < SCHEMA_VERSION:
        SchemaVersion.update(version=SCHEMA_VERSION).execute()
        log.info("store schema upgraded from version %d to %d", version, SCHEMA_VERSION)


def _add_column(db: pw.Database, model: type[pw.Model], column: pw.Field) -> None:
    table = model._meta.table_name
    if column.column_name not in {c.name for c in db.get_columns(table)}:
        migrate(SchemaMigrator.from_database(db).add_column(table, column.column_name, column))
