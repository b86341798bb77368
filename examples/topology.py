"""Print the actors an example created inside dispatchd, as a tree, from ``/api/actors``.

Standard library only. The first tree follows the messages: the vhost's exchanges, each
binding to a queue, each queue's consumer actors and the channel each consumer hands its
deliveries to. The second shows the connections, their channels, and whom each channel
sends to (the exchanges it publishes to, the queues it acks or declares to, its direct
reply-to actor); an arrow ``─►`` is an actor-to-actor edge the broker reports in ``sends_to``.

Only the example's actors are shown: exchanges and queues whose names start with its prefix,
connections whose ``connection_name`` client property does, and whatever hangs off them.

On its own, against a running broker: ``python examples/topology.py PREFIX [ADMIN_URL]``.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_ADMIN_URL = "http://localhost:15672"


@dataclass
class Actor:
    """One ``/api/actors`` record."""

    urn: str
    kind: str
    name: str
    owner: str | None
    sends_to: list[str]


@dataclass
class Node:
    """One line of the tree and the lines below it."""

    label: str
    children: list[Node] = field(default_factory=list)

    def lines(self, indent: str = "") -> list[str]:
        """The node's line, then its children's, drawn with box characters."""
        out = [self.label]
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            first, *rest = child.lines()
            out.append(indent + ("└── " if last else "├── ") + first)
            out += [indent + ("    " if last else "│   ") + line for line in rest]
        return out


class AdminApi:
    """GETs JSON from the admin API, with basic auth (user info in the URL, else guest)."""

    def __init__(self, url: str, user: str = "guest", password: str = "guest") -> None:
        parts = urlsplit(url)
        self.user = parts.username or user
        self.password = parts.password or password
        host = (parts.hostname or "localhost") + (f":{parts.port}" if parts.port else "")
        self.base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))

    def get(self, path: str) -> Any:
        """GET ``path`` and parse the JSON answer."""
        request = urllib.request.Request(self.base + path)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def details(self, actor: Actor) -> dict[str, Any]:
        """What one actor says of itself (``/api/actors/{urn}``); nothing if it just stopped."""
        try:
            return self.get(f"/api/actors/{quote(actor.urn, safe='')}").get("details") or {}
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return {}
            raise


class Topology:
    """The example's corner of the broker's actor graph."""

    def __init__(self, api: AdminApi, prefix: str, vhost: str = "/") -> None:
        fields = Actor.__dataclass_fields__
        self.actors = {
            r["urn"]: Actor(**{k: v for k, v in r.items() if k in fields})
            for r in api.get("/api/actors")
        }
        self.vhost = vhost
        vhost_actor = next(a for a in self.of_kind("vhost") if a.name == vhost)
        described = api.details(vhost_actor)
        self.exchange_types = {e["name"]: e["type"] for e in described["exchanges"]}
        self.queue_info = {q["name"]: q for q in described["queues"]}
        self.bindings = [b for b in described["bindings"] if b["destination"].startswith(prefix)]
        self.queues = {a.urn: a for a in self.of_kind("queue") if a.name.startswith(prefix)}
        self.exchanges = {a.urn: a for a in self.of_kind("exchange") if a.name.startswith(prefix)}
        self.consumers = {c.urn: c for q in self.queues.values() for c in self.sent(q, "consumer")}
        feeding = {c.owner for c in self.consumers.values()}
        self.channels = {a.urn: a for a in self.of_kind("channel") if a.name in feeding}
        owners = {c.owner for c in self.channels.values()}
        self.connections: dict[str, tuple[str, str]] = {}  # actor name -> (label, client)
        for conn in self.of_kind("connection"):
            client = api.details(conn).get("client_properties", {})
            label = str(client.get("connection_name") or conn.name)
            if label.startswith(prefix) or conn.name in owners:
                self.connections[conn.name] = (repr(label), str(client.get("product", "?")))
        self.channels.update(
            (a.urn, a) for a in self.of_kind("channel") if a.owner in self.connections
        )
        names = {c.name for c in self.channels.values()}
        self.reply_to = [a for a in self.of_kind("reply-to") if a.owner in names]

    def of_kind(self, kind: str) -> list[Actor]:
        """Every actor of ``kind``, by name."""
        return sorted((a for a in self.actors.values() if a.kind == kind), key=lambda a: a.name)

    def sent(self, actor: Actor, *kinds: str) -> list[Actor]:
        """The actors of these kinds that ``actor`` has sent to, by kind and name."""
        found = [self.actors[u] for u in actor.sends_to if u in self.actors]
        return sorted((a for a in found if a.kind in kinds), key=lambda a: (a.kind, a.name))

    def channel_label(self, channel: Actor) -> str:
        """``channel N of 'connection name'``."""
        number = re.search(r"\((\d+)\)$", channel.name)
        where = self.connections.get(channel.owner or "", (repr(channel.owner),))[0]
        return f"channel {number.group(1) if number else '?'} of {where}"

    def queue_node(self, queue: Actor, key: str) -> Node:
        """A queue with its arguments, whom it dead-letters to, and its consumers."""
        info = self.queue_info.get(queue.name, {})
        flags = [f for f in ("durable", "exclusive", "auto_delete") if info.get(f)]
        if info.get("exclusive_owner"):
            flags.append("exclusive")
        label = f"[{key}] queue {queue.name}" + (f" ({', '.join(flags)})" if flags else "")
        label += f" {json.dumps(info['arguments'])}" if info.get("arguments") else ""
        onward = self.sent(queue, "exchange")
        label += f"  ─► {', '.join(f'exchange {e.name}' for e in onward)}" if onward else ""
        node = Node(label)
        for consumer in self.sent(queue, "consumer"):
            channels = [self.channel_label(c) for c in self.sent(consumer, "channel")]
            node.children.append(Node(f"consumer {consumer.name}  ─► {', '.join(channels)}"))
        return node

    def vhost_tree(self) -> Node:
        """Exchanges → bindings → queues → consumers → channels."""
        by_name = {a.name: a for a in self.actors.values() if a.kind in ("queue", "exchange")}
        root = Node(f"vhost {self.vhost}")
        sources = {e.name for e in self.exchanges.values()} | {b["source"] for b in self.bindings}
        for source in sorted(sources):
            kind = self.exchange_types.get(source, "?")
            node = Node(f"exchange {source} ({kind})")
            keys: dict[str, list[str]] = {}  # destination -> its binding keys from here
            for b in self.bindings:
                if b["source"] == source:
                    key = json.dumps(b["arguments"]) if kind == "headers" else b["routing_key"]
                    keys.setdefault(b["destination"], []).append(key)
            for name, dest_keys in sorted(keys.items()):
                dest = by_name.get(name)
                key = ", ".join(sorted(dest_keys))
                if dest is not None and dest.kind == "queue":
                    node.children.append(self.queue_node(dest, key))
                else:
                    node.children.append(Node(f"[{key}] exchange {name}"))
            root.children.append(node)
        bound = {b["destination"] for b in self.bindings}
        default = Node('exchange "" (the default exchange)')
        for queue in sorted(self.queues.values(), key=lambda q: q.name):
            if queue.name not in bound:
                default.children.append(self.queue_node(queue, queue.name))
        for reply in self.reply_to:
            channels = [self.channel_label(c) for c in self.sent(reply, "channel")]
            default.children.append(Node(f"[{reply.name}] reply-to  ─► {', '.join(channels)}"))
        if default.children:
            root.children.append(default)
        return root

    def connection_tree(self) -> Node:
        """Connections → channels → what each channel sends to (the vhost left out)."""
        root = Node("connections")
        for name, (label, client) in sorted(self.connections.items(), key=lambda item: item[1]):
            node = Node(f"connection {label} ({client})")
            for channel in sorted(self.channels.values(), key=lambda c: c.name):
                if channel.owner != name:
                    continue
                targets = self.sent(channel, "exchange", "queue", "reply-to")
                sends = ", ".join(f"{t.kind} {_exchange_name(t)}" for t in targets)
                node.children.append(
                    Node(
                        self.channel_label(channel).split(" of ")[0]
                        + (f"  ─► {sends}" if sends else "")
                    )
                )
            root.children.append(node)
        return root

    def render(self) -> str:
        """Both trees as text."""
        return "\n".join(self.vhost_tree().lines() + self.connection_tree().lines())


def _exchange_name(actor: Actor) -> str:
    """The default exchange's actor is called amq.default; show it as RabbitMQ does."""
    return '""' if actor.kind == "exchange" and actor.name == "amq.default" else actor.name


def topology_text(admin_url: str, prefix: str, user: str = "guest", password: str = "guest") -> str:
    """The tree of the actors named with ``prefix``, read from the broker at ``admin_url``."""
    return Topology(AdminApi(admin_url, user, password), prefix).render()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} PREFIX [ADMIN_URL]")
    url = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_ADMIN_URL
    print(topology_text(url, sys.argv[1]))
