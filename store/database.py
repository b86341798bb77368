"""Opening the store: SQLite in the data dir (WAL, synchronous=FULL) or PostgreSQL by URL."""

from __future__ import annotations

import logging
from pathlib import Path

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from dispatchd.store.models import MODELS, SCHEMA_VERSION, QueueMessageRow, SchemaVersion, bind

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
            db.create_tables(MODELS, safe=True)
            row = SchemaVersion.select().first()
            if row is None:
                SchemaVersion.create(version=SCHEMA_VERSION)
            elif row.version == 1:  # version 2 added queue_messages.expires
                migrate(
                    SchemaMigrator.from_database(db).add_column(
                        QueueMessageRow._meta.table_name, "expires", QueueMessageRow.expires
                    )
                )
                SchemaVersion.update(version=SCHEMA_VERSION).execute()
                log.info("store schema upgraded from version 1 to %d", SCHEMA_VERSION)
            elif row.version != SCHEMA_VERSION:
                raise StoreError(
                    f"data was written with schema version {row.version}; "
                    f"this dispatchd reads version {SCHEMA_VERSION}"
                )
    except pw.DatabaseError as exc:
        db.close()
        raise StoreError(f"cannot open the store at {url_or_dir}: {exc}") from exc
    return db
