"""The management API's records, in RabbitMQ's shapes, computed from one :class:`Snapshot`.

Field names follow RabbitMQ's management plugin (``/api/queues`` has ``messages``,
``messages_ready``, ``messages_unacknowledged``, ``consumers``, ``message_stats.publish`` with
``publish_details.rate``, and so on) for everything dispatchd has; what it does not have is left
out rather than faked. dispatchd adds a ``mailbox`` object (depth, oldest waiting message, messages
handled and their rate) to the records of entities that are actors.

What each actor's ``describe()`` contributes (the admin's side of the contract):

- vhost: ``exchanges``, ``queues`` (declarations with the ``actor`` URN) and ``bindings``;
- queue: ``messages_ready``, ``messages_unacknowledged``, ``published``, ``delivered``,
  ``acked`` and ``consumers`` (tag, channel URN, ack_required, prefetch_count, exclusive,
  arguments, priority, active and activity_status);
- channel: ``number``, prefetch, unacked/unconfirmed/uncommitted counts, ``confirm``,
  ``transactional``, ``published``, ``delivered``, ``acked``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any
from urllib.parse import quote_plus

from dispatchd import RABBITMQ_VERSION, __version__
from dispatchd.access import Vhost
from dispatchd.actors.routing import ROUTERS
from dispatchd.actors.runtime import ActorInfo
from dispatchd.admin.rates import RateTracker
from dispatchd.admin.snapshot import ConnectionState, Snapshot
from dispatchd.alarms import DISK, MEMORY

#: /api/nodes ``auth_mechanisms``: RabbitMQ's descriptions of the mechanisms dispatchd has.
MECHANISM_DESCRIPTIONS = {
    "PLAIN": "SASL PLAIN authentication mechanism",
    "AMQPLAIN": "QPid AMQPLAIN mechanism",
    "EXTERNAL": "TLS peer verification-based authentication plugin. Used in combination with "
    "the EXTERNAL SASL mechanism.",
}

__all__ = ["Records"]

PRODUCT = "dispatchd"


def _process() -> dict[str, Any]:
    """This process's pid, RSS, open descriptors and their limit, from ``/proc``."""
    try:
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        rss = fds = 0
    return {
        "os_pid": str(os.getpid()),
        "mem_used": rss,
        "mem_calculation_strategy": "rss",
        "fd_used": fds,
        "fd_total": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "processors": os.cpu_count() or 1,
    }


def _details(record: dict[str, Any], name: str, value: float, rate: float) -> None:
    """Set ``name`` and RabbitMQ's ``name_details: {rate}`` on a record."""
    record[name] = value
    record[f"{name}_details"] = {"rate": round(rate, 2)}


def _metadata(vhost: Vhost) -> dict[str, Any]:
    """A vhost's ``metadata`` as RabbitMQ shows it (the queue type only once one is set)."""
    metadata: dict[str, Any] = {"description": vhost.description, "tags": list(vhost.tags)}
    if vhost.default_queue_type != "undefined":
        metadata["default_queue_type"] = vhost.default_queue_type
    return metadata


def _counts(described: Mapping[str, Any]) -> dict[str, int]:
    """RabbitMQ's ``message_stats`` names for the totals a queue or channel describes."""
    return {
        "publish": described.get("published", 0),
        "deliver_get": described.get("delivered", 0),
        "ack": described.get("acked", 0),
    }


def properties_key(routing_key: str, arguments: Mapping[str, Any]) -> str:
    """The binding's id in API paths (RabbitMQ's ``properties_key``): ``~`` for an empty key
    without arguments, else the key form-encoded (``~`` escaped, as it separates), plus ``~``
    and a short hash of the arguments when there are any. (RabbitMQ hashes with Erlang's
    ``phash2``, so the hash part differs; clients take the key from the binding record.)"""
    key = quote_plus(routing_key, safe="*").replace("~", "%7E")  # HTML form encoding
    if not arguments:
        return key or "~"
    packed = json.dumps(arguments, sort_keys=True, default=str).encode()
    digest = base64.urlsafe_b64encode(hashlib.md5(packed).digest()[:4]).decode().rstrip("=")
    return f"{key}~{digest}"


class Records:
    """RabbitMQ-shaped records of one snapshot; rates come from the shared tracker."""

    def __init__(self, snap: Snapshot, rates: RateTracker) -> None:
        self.snap = snap
        self.rates = rates
        self.node = snap.node
        # channel URN -> its connection
        self._channel_conn: dict[str, ConnectionState] = {
            urn: conn for conn in snap.connections for urn in conn.channels.values()
        }
        self._all: dict[str, list[dict[str, Any]]] = {}  # queues/consumers of every vhost

    @property
    def cluster_name(self) -> str:
        """The ``cluster_name`` global parameter, once one is set; else the node's name."""
        return str(self.snap.access.global_parameters.get("cluster_name", self.node))

    # ----- helpers

    def _rate(self, key: tuple[Any, ...], value: float) -> float:
        return self.rates.rate(key, self.snap.taken_at, value)

    def _stats(self, key: tuple[Any, ...], counts: Mapping[str, int]) -> dict[str, Any]:
        """``message_stats`` from totals: ``{publish: n, publish_details: {rate}, ...}``."""
        stats: dict[str, Any] = {}
        for name, value in counts.items():
            _details(stats, name, value, self._rate((*key, name), value))
        return stats

    def _mailbox(self, urn: str | None) -> dict[str, Any] | None:
        info = self.snap.by_urn.get(urn) if urn else None
        if info is None:
            return None
        return {
            "depth": info.depth,
            "oldest_age": info.oldest_age_s,
            "handled": info.handled,
            "handled_details": {"rate": round(self._rate(("actor", urn), info.handled), 2)},
        }

    def _vhost_views(self, vhost: str | None) -> list[tuple[str, Mapping[str, Any]]]:
        """(name, description) of the vhosts asked for (all when ``vhost`` is None)."""
        out = []
        for name, urn in sorted(self.snap.vhosts.items()):
            if vhost is not None and name != vhost:
                continue
            described = self.snap.describe(urn)
            out.append((name, described if described is not None else {}))
        return out

    def has_vhost(self, vhost: str) -> bool:
        """Whether the vhost exists."""
        return vhost in self.snap.vhosts

    def _channel_details(self, channel_urn: str | None) -> dict[str, Any]:
        info = self.snap.by_urn.get(channel_urn) if channel_urn else None
        described = self.snap.describe(channel_urn) or {}
        conn = self._channel_conn.get(channel_urn or "")
        return {
            "name": info.name if info else "",
            "number": described.get("number", 0),
            "node": self.node,
            "connection_name": conn.name if conn else "",
            "peer_host": conn.peer_host if conn else "",
            "peer_port": conn.peer_port if conn else 0,
            "user": conn.user if conn else "",
        }

    # ----- overview

    def message_totals(self) -> dict[str, int]:
        """Broker-wide publish/deliver_get/ack totals: closed channels plus live ones."""
        closed = self.snap.closed_channels
        totals = {"publish": closed.published, "deliver_get": closed.delivered, "ack": closed.acked}
        for _, described in self.snap.of_kind("channel"):
            if described:
                for name, value in _counts(described).items():
                    totals[name] += value
        return totals

    def overview(self, admin_port: int) -> dict[str, Any]:
        """``GET /api/overview``."""
        queues = self.queues()
        totals: dict[str, Any] = {}
        for field in ("messages", "messages_ready", "messages_unacknowledged"):
            value = sum(q.get(field) or 0 for q in queues)
            _details(totals, field, value, self._rate(("overview", field), value))
        actors = self.snap.actors
        return {
            "management_version": RABBITMQ_VERSION,
            "product_name": PRODUCT,
            "product_version": __version__,
            "rabbitmq_version": RABBITMQ_VERSION,
            "rates_mode": "basic",
            "cluster_name": self.cluster_name,
            "node": self.node,
            "exchange_types": [
                {"name": name, "description": "", "enabled": True} for name in ROUTERS
            ],
            "message_stats": self._stats(("overview",), self.message_totals()),
            "queue_totals": totals,
            "object_totals": {
                "connections": len(self.snap.connections),
                "channels": len(self._channel_conn),
                "exchanges": sum(len(v.get("exchanges", ())) for _, v in self._vhost_views(None)),
                "queues": len(queues),
                "consumers": len(self.consumers()),
            },
            "actor_totals": {
                "actors": len(actors),
                "mailbox_depth": sum(a.depth for a in actors),
                "oldest_message_age": max((a.oldest_age_s for a in actors), default=0.0),
            },
            "listeners": [
                {"node": self.node, "protocol": x.protocol, "ip_address": x.ip, "port": x.port}
                for x in self.snap.listeners
            ],
            "contexts": [
                {
                    "node": self.node,
                    "description": "dispatchd admin",
                    "path": "/",
                    "port": str(admin_port),
                }
            ],
        }

    def node_record(self) -> dict[str, Any]:
        """``GET /api/nodes/{name}``: this node, with what dispatchd measures of it."""
        snap = self.snap
        res = snap.resources
        try:
            disk_free = res.disk_free if res else shutil.disk_usage(snap.data_dir or ".").free
        except OSError:
            disk_free = 0
        record = {
            "name": self.node,
            "type": "disc",
            "running": True,
            "uptime": int((snap.wall - snap.started_at) * 1000),
            "rates_mode": "basic",
            **_process(),
            "sockets_used": len(snap.connections),
            "proc_used": len(snap.actors),
            "mem_alarm": bool(res and MEMORY in res.alarms),
            "disk_free": disk_free,
            "disk_free_alarm": bool(res and DISK in res.alarms),
            "db_dir": snap.data_dir,
            "partitions": [],
            "auth_mechanisms": [
                {"name": name, "description": text, "enabled": name in snap.auth_mechanisms}
                for name, text in MECHANISM_DESCRIPTIONS.items()
            ],
            "exchange_types": [
                {"name": name, "description": "", "enabled": True} for name in ROUTERS
            ],
        }
        if res is not None:
            record |= {
                "mem_used": res.mem_used,
                "mem_limit": res.mem_limit,
                "disk_free_limit": res.disk_free_limit,
            }
        return record

    def alarms(self) -> list[dict[str, str]]:
        """The alarms on, as ``rabbit_alarm:format_as_maps``."""
        res = self.snap.resources
        names = {MEMORY: "memory", DISK: "disk space"}
        return [{"resource": names[r], "node": self.node} for r in (res.alarms if res else ())]

    # ----- connections and channels

    def connections(self) -> list[dict[str, Any]]:
        """``GET /api/connections``."""
        return [
            {
                "name": c.name,
                "node": self.node,
                "type": "network",
                "protocol": "AMQP 0-9-1",
                "state": c.state,
                "user": c.user,
                "vhost": c.vhost,
                "host": c.host,
                "port": c.port,
                "peer_host": c.peer_host,
                "peer_port": c.peer_port,
                "ssl": c.tls is not None,
                **(c.tls or {}),
                "auth_mechanism": c.auth_mechanism,
                "channels": len(c.channels),
                "channel_max": c.channel_max,
                "frame_max": c.frame_max,
                "timeout": c.heartbeat,
                "connected_at": int(c.connected_at * 1000),
                "client_properties": c.client_properties,
                "mailbox": self._mailbox(c.actor),
            }
            for c in sorted(self.snap.connections, key=lambda c: c.id)
        ]

    def channels(self) -> list[dict[str, Any]]:
        """``GET /api/channels``."""
        out = []
        for info, described in self.snap.of_kind("channel"):
            conn = self._channel_conn.get(info.urn)
            d = described or {}
            record: dict[str, Any] = {
                "name": info.name,
                "number": d.get("number"),
                "node": self.node,
                "state": "running" if described else "busy",
                "user": conn.user if conn else "",
                "vhost": conn.vhost if conn else "",
                "connection_details": {
                    "name": conn.name if conn else info.owner,
                    "peer_host": conn.peer_host if conn else "",
                    "peer_port": conn.peer_port if conn else 0,
                },
                "mailbox": self._mailbox(info.urn),
            }
            if described:
                for field in (
                    "consumer_count",
                    "messages_unacknowledged",
                    "messages_unconfirmed",
                    "messages_uncommitted",
                    "acks_uncommitted",
                    "prefetch_count",
                    "global_prefetch_count",
                    "confirm",
                    "transactional",
                ):
                    record[field] = d.get(field)
                record["message_stats"] = self._stats(("channel", info.urn), _counts(d))
            out.append(record)
        out.sort(key=lambda r: r["name"])
        return out

    # ----- exchanges, queues, bindings

    def exchanges(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/exchanges[/{vhost}]``."""
        out = []
        for vname, described in self._vhost_views(vhost):
            for x in described.get("exchanges", ()):
                out.append(
                    {
                        "name": x["name"],
                        "vhost": vname,
                        "type": x["type"],
                        "durable": x["durable"],
                        "auto_delete": x["auto_delete"],
                        "internal": x["internal"],
                        "arguments": x["arguments"],
                        "user_who_performed_action": "",
                        "mailbox": self._mailbox(x.get("actor")),
                    }
                )
        out.sort(key=lambda r: (r["vhost"], r["name"]))
        return out

    def queues(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/queues[/{vhost}]``."""
        if vhost is None and "queues" in self._all:
            return self._all["queues"]
        conn_names = {c.id: c.name for c in self.snap.connections}
        out = []
        for vname, described in self._vhost_views(vhost):
            for q in described.get("queues", ()):
                out.append(self._queue(vname, q, conn_names))
        out.sort(key=lambda r: (r["vhost"], r["name"]))
        if vhost is None:
            self._all["queues"] = out
        return out

    def _queue(
        self, vhost: str, q: Mapping[str, Any], conn_names: Mapping[int, str]
    ) -> dict[str, Any]:
        urn = q.get("actor")
        owner = q.get("exclusive_owner")
        record: dict[str, Any] = {
            "name": q["name"],
            "vhost": vhost,
            "durable": q["durable"],
            "auto_delete": q["auto_delete"],
            "exclusive": owner is not None,
            "arguments": q["arguments"],
            "node": self.node,
            "type": "classic",
        }
        if owner is not None:
            record["owner_pid_details"] = {"name": conn_names.get(owner, "")}
        d = self.snap.describe(urn)
        if d is None or "error" in d:
            record["state"] = "busy"
        else:
            record["state"] = "running"
            ready = d["messages_ready"]
            unacked = d["messages_unacknowledged"]
            key = ("queue", urn)
            _details(record, "messages", ready + unacked, self._rate((*key, "m"), ready + unacked))
            _details(record, "messages_ready", ready, self._rate((*key, "r"), ready))
            _details(record, "messages_unacknowledged", unacked, self._rate((*key, "u"), unacked))
            consumers = d.get("consumers", ())
            record["consumers"] = len(consumers)
            record["exclusive_consumer_tag"] = next(
                (c["consumer_tag"] for c in consumers if c.get("exclusive")), None
            )
            if q["arguments"].get("x-single-active-consumer") is True:
                record["single_active_consumer_tag"] = next(
                    (c["consumer_tag"] for c in consumers if c.get("active")), None
                )
            record["message_stats"] = self._stats(key, _counts(d))
        record["mailbox"] = self._mailbox(urn)
        return record

    def queue(self, vhost: str, name: str) -> dict[str, Any] | None:
        """``GET /api/queues/{vhost}/{name}``: the record plus ``consumer_details``."""
        record = next((q for q in self.queues(vhost) if q["name"] == name), None)
        if record is not None:
            record["consumer_details"] = [
                c for c in self.consumers(vhost) if c["queue"]["name"] == name
            ]
        return record

    def queue_actor(self, vhost: str, name: str) -> dict[str, Any] | None:
        """The vhost's declaration of a queue (with its actor URN and exclusive owner)."""
        for _, described in self._vhost_views(vhost):
            for q in described.get("queues", ()):
                if q["name"] == name:
                    return dict(q)
        return None

    def bindings(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/bindings[/{vhost}]``, the default exchange's implicit bindings first."""
        out = []
        for vname, described in self._vhost_views(vhost):
            for q in sorted(described.get("queues", ()), key=lambda q: q["name"]):
                out.append(self._binding(vname, "", q["name"], "queue", q["name"], {}))
            for b in described.get("bindings", ()):
                out.append(
                    self._binding(
                        vname,
                        b["source"],
                        b["destination"],
                        b["destination_type"],
                        b["routing_key"],
                        b["arguments"],
                    )
                )
        return out

    @staticmethod
    def _binding(
        vhost: str,
        source: str,
        destination: str,
        destination_type: str,
        routing_key: str,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            "source": source,
            "vhost": vhost,
            "destination": destination,
            "destination_type": destination_type,
            "routing_key": routing_key,
            "arguments": arguments,
            "properties_key": properties_key(routing_key, arguments),
        }

    # ----- consumers, vhosts, users

    def consumers(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/consumers[/{vhost}]``."""
        if vhost is None and "consumers" in self._all:
            return self._all["consumers"]
        out = []
        for vname, described in self._vhost_views(vhost):
            for q in described.get("queues", ()):
                d = self.snap.describe(q.get("actor")) or {}
                for c in d.get("consumers", ()):
                    out.append(
                        {
                            "consumer_tag": c["consumer_tag"],
                            "queue": {"name": q["name"], "vhost": vname},
                            "channel_details": self._channel_details(c.get("channel")),
                            "ack_required": c["ack_required"],
                            "prefetch_count": c["prefetch_count"],
                            "exclusive": c["exclusive"],
                            "arguments": c.get("arguments", {}),
                            "active": c.get("active", True),
                            "activity_status": c.get("activity_status", "up"),
                        }
                    )
        if vhost is None:
            self._all["consumers"] = out
        return out

    def vhosts(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/vhosts[/{name}]``."""
        queues = self.queues(vhost)
        out = []
        for vname, _ in self._vhost_views(vhost):
            meta = self.snap.access.vhosts.get(vname) or Vhost(vname)
            record: dict[str, Any] = {
                "name": vname,
                "description": meta.description,
                "tags": list(meta.tags),
                "default_queue_type": meta.default_queue_type,
                "metadata": _metadata(meta),
                "tracing": False,
                "cluster_state": {self.node: "running"},
            }
            for field in ("messages", "messages_ready", "messages_unacknowledged"):
                value = sum(q.get(field) or 0 for q in queues if q["vhost"] == vname)
                _details(record, field, value, self._rate(("vhost", vname, field), value))
            out.append(record)
        return out

    def users(self) -> list[dict[str, Any]]:
        """``GET /api/users``."""
        return [
            {
                "name": u.name,
                "password_hash": u.password_hash,
                "hashing_algorithm": u.hashing_algorithm,
                "tags": list(u.tags),
                "limits": dict(u.limits),
            }
            for u in sorted(self.snap.access.users.values(), key=lambda u: u.name)
        ]

    def permissions(self) -> list[dict[str, Any]]:
        """``GET /api/permissions``."""
        return [
            {
                "user": user,
                "vhost": vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            }
            for (vhost, user), p in sorted(self.snap.access.permissions.items())
        ]

    def topic_permissions(self) -> list[dict[str, Any]]:
        """``GET /api/topic-permissions``."""
        return [
            {"user": user, "vhost": vhost} | asdict(t)
            for (vhost, user), topics in sorted(self.snap.access.topic_permissions.items())
            for t in topics.values()
        ]

    def user_limits(self) -> list[dict[str, Any]]:
        """``GET /api/user-limits``: the users that have limits."""
        return [
            {"user": u.name, "value": dict(u.limits)}
            for u in sorted(self.snap.access.users.values(), key=lambda u: u.name)
            if u.limits
        ]

    def policies(self, vhost: str | None = None, operator: bool = False) -> list[dict[str, Any]]:
        """``GET /api/policies[/{vhost}]`` (``operator``: ``/api/operator-policies``)."""
        access = self.snap.access
        table = access.operator_policies if operator else access.policies
        return [
            {
                "vhost": p.vhost,
                "name": p.name,
                "pattern": p.pattern,
                "apply-to": p.apply_to,
                "definition": dict(p.definition),
                "priority": p.priority,
            }
            for (where, _), p in sorted(table.items())
            if vhost is None or where == vhost
        ]

    def parameters(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """The runtime parameters as a definitions export has them: vhost limits and
        operator policies."""
        limits = [
            {
                "value": v["value"],
                "vhost": v["vhost"],
                "component": "vhost-limits",
                "name": "limits",
            }
            for v in self.vhost_limits()
            if vhost is None or v["vhost"] == vhost
        ]
        operator = [
            {
                "value": {k: p[k] for k in ("pattern", "definition", "priority", "apply-to")},
                "vhost": p["vhost"],
                "component": "operator_policy",
                "name": p["name"],
            }
            for p in self.policies(vhost, operator=True)
        ]
        return operator + limits

    def vhost_limits(self) -> list[dict[str, Any]]:
        """``GET /api/vhost-limits``: the vhosts that have limits."""
        return [
            {"vhost": v.name, "value": dict(v.limits)}
            for v in sorted(self.snap.access.vhosts.values(), key=lambda v: v.name)
            if v.limits
        ]

    # ----- definitions

    def definitions(self, vhost: str | None = None) -> dict[str, Any]:
        """``GET /api/definitions[/{vhost}]``: what ``POST /api/definitions`` takes back.

        Like RabbitMQ: exclusive queues, the default exchange and ``amq.*`` exchanges and the
        default exchange's implicit bindings are left out; a per-vhost export has no vhost
        fields and no users, vhosts or permissions (its policies and parameters keep theirs,
        as RabbitMQ's). Global parameters whose names start with ``internal`` stay out.
        """

        def strip(items: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
            return [{k: item[k] for k in keys if vhost is None or k != "vhost"} for item in items]

        queues = [q for q in self.queues(vhost) if not q["exclusive"]]
        exchanges = [
            x for x in self.exchanges(vhost) if x["name"] and not x["name"].startswith("amq.")
        ]
        bindings = [b for b in self.bindings(vhost) if b["source"]]
        body: dict[str, Any] = {"product_name": PRODUCT, "product_version": __version__}
        if vhost is None:
            vhosts = sorted(self.snap.access.vhosts.values(), key=lambda v: v.name)
            body |= {
                "users": self.users(),
                "vhosts": [
                    {
                        "name": v.name,
                        "limits": [[k, n] for k, n in v.limits.items()],
                        "metadata": _metadata(v),
                    }
                    for v in vhosts
                ],
                "permissions": self.permissions(),
                "topic_permissions": self.topic_permissions(),
                "global_parameters": [
                    {"name": name, "value": value}
                    for name, value in sorted(self.snap.access.global_parameters.items())
                    if not name.startswith("internal")
                ],
            }
        body |= {
            "parameters": self.parameters(vhost),
            "policies": self.policies(vhost),
            "queues": strip(queues, ("name", "vhost", "durable", "auto_delete", "arguments")),
            "exchanges": strip(
                exchanges,
                ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"),
            ),
            "bindings": strip(
                bindings,
                ("source", "vhost", "destination", "destination_type", "routing_key", "arguments"),
            ),
        }
        return body

    # ----- actors

    def actor(self, info: ActorInfo, details: bool = False) -> dict[str, Any]:
        """One ``/api/actors`` record; ``details`` adds what the actor said of itself."""
        record: dict[str, Any] = {
            "urn": info.urn,
            "kind": info.kind,
            "name": info.name,
            "owner": info.owner,
            "mailbox_depth": info.depth,
            "oldest_age": info.oldest_age_s,
            "handled": info.handled,
            "rate": round(self._rate(("actor", info.urn), info.handled), 2),
            "sends_to": list(info.sends_to),
            "responsive": info.urn in self.snap.described,
        }
        if details:
            record["details"] = self.snap.describe(info.urn)
        return record

    def actors(self) -> list[dict[str, Any]]:
        """``GET /api/actors``: every live actor, its mailbox and whom it sends to."""
        return [self.actor(info) for info in self.snap.actors]

    def dashboard(self, admin_port: int) -> dict[str, Any]:
        """``GET /api/dashboard``: everything the page shows, from this one snapshot."""
        return {
            "overview": self.overview(admin_port),
            "queues": self.queues(),
            "connections": self.connections(),
            "channels": self.channels(),
            "exchanges": self.exchanges(),
            "consumers": self.consumers(),
            "actors": self.actors(),
        }
