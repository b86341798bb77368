"""Peewee models of everything dispatchd persists.

The same models run on SQLite (the embedded default) and PostgreSQL. Each thread that uses
the store binds the models to its broker's database (``bind``): the binding is per thread
(peewee's ``ThreadSafeDatabaseMetadata``), so brokers in one process keep their stores
apart. Field tables (arguments) are stored in
their AMQP wire encoding, so every type round-trips exactly.
"""

from __future__ import annotations

import peewee as pw
from playhouse.shortcuts import ThreadSafeDatabaseMetadata

SCHEMA_VERSION = 4  # 2: queue_messages.expires; 3: users, vhosts, permissions; 4: policies


class BaseModel(pw.Model):
    """Every model's database is bound per thread (see ``bind``)."""

    class Meta:
        model_metadata_class = ThreadSafeDatabaseMetadata


class SchemaVersion(BaseModel):
    """One row: the schema version this data dir was written with."""

    version = pw.IntegerField()
    initialised = pw.BooleanField(default=False)  # the first start's users and vhosts exist

    class Meta:
        table_name = "schema_version"


class VhostRow(BaseModel):
    """A virtual host and its metadata; ``limits`` is a JSON object."""

    name = pw.CharField(max_length=255, unique=True)
    description = pw.TextField(default="")
    tags = pw.TextField(default="")  # comma-separated
    default_queue_type = pw.CharField(max_length=32, default="undefined")
    limits = pw.TextField(default="{}")

    class Meta:
        table_name = "vhosts"


class UserRow(BaseModel):
    """A user; an empty ``password_hash`` is a user without a password."""

    name = pw.CharField(max_length=255, unique=True)
    password_hash = pw.CharField(max_length=255, default="")
    hashing_algorithm = pw.CharField(max_length=64)
    tags = pw.TextField(default="")  # comma-separated
    limits = pw.TextField(default="{}")

    class Meta:
        table_name = "users"


class PermissionRow(BaseModel):
    """A user's configure / write / read regexes in one vhost."""

    vhost = pw.CharField(max_length=255)
    user = pw.CharField(max_length=255)
    configure = pw.TextField()
    write = pw.TextField()
    read = pw.TextField()

    class Meta:
        table_name = "permissions"
        indexes = ((("vhost", "user"), True),)


class TopicPermissionRow(BaseModel):
    """A user's routing-key regexes on one topic exchange of one vhost."""

    vhost = pw.CharField(max_length=255)
    user = pw.CharField(max_length=255)
    exchange = pw.CharField(max_length=255)
    write = pw.TextField()
    read = pw.TextField()

    class Meta:
        table_name = "topic_permissions"
        indexes = ((("vhost", "user", "exchange"), True),)


class PolicyRow(BaseModel):
    """A policy or operator policy of one vhost; ``priority`` (an integer or a float, as
    RabbitMQ takes either) and ``definition`` are JSON."""

    vhost = pw.CharField(max_length=255)
    name = pw.CharField(max_length=255)
    operator = pw.BooleanField(default=False)
    pattern = pw.TextField()
    apply_to = pw.CharField(max_length=16)
    priority = pw.TextField()
    definition = pw.TextField()

    class Meta:
        table_name = "policies"
        indexes = ((("vhost", "name", "operator"), True),)


class GlobalParameterRow(BaseModel):
    """A global runtime parameter (``cluster_name``, ...); ``value`` is JSON."""

    name = pw.CharField(max_length=255, unique=True)
    value = pw.TextField()

    class Meta:
        table_name = "global_parameters"


class ExchangeRow(BaseModel):
    """A durable exchange."""

    vhost = pw.CharField(max_length=255)
    name = pw.CharField(max_length=255)
    type = pw.CharField(max_length=32)
    auto_delete = pw.BooleanField(default=False)
    internal = pw.BooleanField(default=False)
    arguments = pw.BlobField()

    class Meta:
        table_name = "exchanges"
        indexes = ((("vhost", "name"), True),)


class QueueRow(BaseModel):
    """A durable queue; ``id`` names it in queue_messages."""

    id = pw.AutoField()
    vhost = pw.CharField(max_length=255)
    name = pw.CharField(max_length=255)
    auto_delete = pw.BooleanField(default=False)
    arguments = pw.BlobField()

    class Meta:
        table_name = "queues"
        indexes = ((("vhost", "name"), True),)


class BindingRow(BaseModel):
    """A binding whose source and destination are both durable."""

    vhost = pw.CharField(max_length=255)
    source = pw.CharField(max_length=255)
    dest_kind = pw.CharField(max_length=8)
    dest = pw.CharField(max_length=255)
    routing_key = pw.CharField(max_length=255)
    arguments = pw.BlobField()

    class Meta:
        table_name = "bindings"
        indexes = ((("vhost", "source", "dest_kind", "dest", "routing_key", "arguments"), True),)


class MessageRow(BaseModel):
    """A persistent message's content, stored once however many queues hold it."""

    id = pw.BigIntegerField(primary_key=True)
    exchange = pw.CharField(max_length=255)
    routing_key = pw.CharField(max_length=255)
    properties = pw.BlobField()
    body = pw.BlobField()

    class Meta:
        table_name = "messages"


class QueueMessageRow(BaseModel):
    """A persistent message's place in one durable queue."""

    queue_id = pw.IntegerField()
    position = pw.BigIntegerField()
    message_id = pw.BigIntegerField(index=True)
    delivered = pw.BooleanField(default=False)
    expires = pw.BigIntegerField(default=0)  # wall-clock ms when the message expires; 0: never

    class Meta:
        table_name = "queue_messages"
        primary_key = pw.CompositeKey("queue_id", "position")


MODELS: list[type[BaseModel]] = [
    SchemaVersion,
    VhostRow,
    UserRow,
    PermissionRow,
    TopicPermissionRow,
    PolicyRow,
    GlobalParameterRow,
    ExchangeRow,
    QueueRow,
    BindingRow,
    MessageRow,
    QueueMessageRow,
]


def bind(db: pw.Database) -> None:
    """Make the calling thread's queries on every model use ``db``."""
    db.bind(MODELS, bind_refs=False, bind_backrefs=False)
