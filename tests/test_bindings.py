"""Bindings: bind and unbind over pika (missing ends, identity, exclusive queues), what deleting
a queue or an exchange does to the bindings around it, and the vhost's own bookkeeping.

The socket tests use RabbitMQ 3.10's reply codes and texts (``DISPATCHD_PEER_PORT=5692``
runs them against it). The last tests drive a VhostActor in-process through a long random
sequence of declares, binds and deletes and check that its binding index, the exchange
actors' routing snapshots and the routers still agree.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from pika import spec

from dispatchd.actors.messages import AddReplyName, RemoveReplyName, Reply, Request
from dispatchd.actors.reply_to import REPLY_PREFIX, ReplyToActor
from dispatchd.actors.routing import BindingIndex, BindingKey, freeze
from dispatchd.actors.runtime import Describe, LoopActor, Runtime, handles
from dispatchd.actors.vhost import VhostActor
from dispatchd.wire import spec as amqp
from tests.routing_support import Net, channel_close
from tests.routing_support import net as net
from tests.routing_support import peer as peer
from tests.support.actors import on_loop

# ----- over the socket


def test_bind_needs_both_ends_source_first(net: Net) -> None:
    queue, exchange = net.queue(), net.exchange("fanout")
    none_x, none_q = net.unique("none-x"), net.unique("none-q")

    def no(kind: str, name: str) -> str:
        return f"NOT_FOUND - no {kind} '{name}' in vhost '/'"

    for step, text in [
        (spec.Queue.Bind(queue=none_q, exchange=none_x), no("exchange", none_x)),
        (spec.Queue.Bind(queue=queue, exchange=none_x), no("exchange", none_x)),
        (spec.Queue.Bind(queue=none_q, exchange=exchange), no("queue", none_q)),
    ]:
        assert net.closes(step) == channel_close(404, text, 50, 20)
    for step, text in [
        (spec.Exchange.Bind(destination=none_q, source=none_x), no("exchange", none_x)),
        (spec.Exchange.Bind(destination=exchange, source=none_x), no("exchange", none_x)),
        (spec.Exchange.Bind(destination=none_x, source=exchange), no("exchange", none_x)),
    ]:
        assert net.closes(step) == channel_close(404, text, 40, 30)


def test_unbinding_what_is_not_bound_succeeds(net: Net) -> None:
    queue, exchange = net.queue(), net.exchange("direct")
    missing = net.unique("missing")
    channel = net.peer.admin()
    channel.queue_unbind(queue, exchange, "never-bound")
    channel.queue_unbind(missing, exchange)
    channel.queue_unbind(queue, missing)
    channel.exchange_unbind(exchange, "amq.direct", "never-bound")
    channel.exchange_unbind(missing, exchange)
    channel.exchange_unbind(exchange, missing)


def test_binding_twice_is_one_binding(net: Net) -> None:
    queue, exchange = net.queue(), net.exchange("direct")
    net.bind(queue, exchange, "k")
    net.bind(queue, exchange, "k")
    assert net.publish(exchange, "k", b"once")
    net.peer.admin().queue_unbind(queue, exchange, "k")
    assert not net.publish(exchange, "k", b"unbound", mandatory=True)
    assert net.take(queue) == [b"once"]


def test_arguments_are_part_of_a_bindings_identity(net: Net) -> None:
    queue, exchange = net.queue(), net.exchange("direct")
    net.bind(queue, exchange, "k", tag=1)
    net.bind(queue, exchange, "k", tag=2)
    channel = net.peer.admin()
    channel.queue_unbind(queue, exchange, "k", arguments={"tag": 1})
    assert net.publish(exchange, "k", b"still-bound", mandatory=True)
    channel.queue_unbind(queue, exchange, "k", arguments={"tag": 3})  # no such binding
    assert net.publish(exchange, "k", b"again", mandatory=True)
    channel.queue_unbind(queue, exchange, "k", arguments={"tag": 2})
    assert not net.publish(exchange, "k", b"gone", mandatory=True)
    assert net.take(queue) == [b"still-bound", b"again"]


def test_bad_binding_arguments_are_refused_before_exclusive_access(net: Net) -> None:
    owner = net.peer.channel()
    queue = owner.queue_declare(net.unique("excl"), exclusive=True).method.queue
    bind = spec.Queue.Bind(queue=queue, exchange="amq.headers", arguments={"x-match": 1})
    assert net.closes(bind) == channel_close(
        406,
        "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr",
        50,
        20,
    )


def test_deleting_a_queue_removes_its_bindings_everywhere(net: Net) -> None:
    direct, topic = net.exchange("direct"), net.exchange("topic")
    queue = net.queue()
    net.bind(queue, direct, "k")
    net.bind(queue, topic, "a.#")
    channel = net.peer.admin()
    channel.queue_delete(queue)
    channel.queue_declare(queue)  # the same name again: a new queue, not bound anywhere
    assert not net.publish(direct, "k", mandatory=True)
    assert not net.publish(topic, "a.b", mandatory=True)
    channel.exchange_delete(direct, if_unused=True)
    channel.exchange_delete(topic, if_unused=True)


def test_deleting_an_exchange_removes_bindings_from_and_to_it(net: Net) -> None:
    upstream, middle = net.exchange("fanout"), net.exchange("direct")
    queue = net.queue()
    channel = net.peer.admin()
    channel.exchange_bind(middle, upstream)
    net.bind(queue, middle, "k")
    channel.exchange_delete(middle)
    channel.exchange_declare(middle, "direct")  # the same name again: no bindings either way
    assert not net.publish(upstream, "k", mandatory=True)
    assert not net.publish(middle, "k", mandatory=True)
    channel.exchange_delete(upstream, if_unused=True)
    assert net.count(queue) == 0


# ----- the vhost's bookkeeping, in-process


def test_binding_index_lookups() -> None:
    index = BindingIndex()
    keys = [
        BindingKey("x", "queue", "q1", "a", freeze({})),
        BindingKey("x", "queue", "q1", "b", freeze({})),
        BindingKey("x", "exchange", "y", "", freeze({})),
        BindingKey("y", "queue", "q1", "", freeze({"h": 1})),
    ]
    assert [index.add(key) for key in keys] == [True] * 4
    assert not index.add(BindingKey("x", "queue", "q1", "a", freeze({})))
    assert len(index) == 4 and list(index) == keys
    assert index.to_destination("queue", "q1") == [keys[0], keys[1], keys[3]]
    assert index.remove_destination("queue", "q1") == [keys[0], keys[1], keys[3]]
    assert index.has_source("x") and not index.has_source("y")
    assert index.remove_source("x") == [keys[2]]
    assert len(index) == 0 and index.problems() == []
    assert not index.remove(keys[0])


class Replies(LoopActor):
    """Hands every Reply it receives to an asyncio queue."""

    kind = "replies"

    def __init__(self, queue: asyncio.Queue[Reply]) -> None:
        super().__init__()
        self.queue = queue

    @handles(Reply)
    def on_reply(self, message: Reply) -> None:
        self.queue.put_nowait(message)


class Driver:
    """Sends requests to an in-process vhost and awaits each reply."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.vhost = runtime.start(VhostActor, "/")
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.inbox = runtime.start(Replies, self.replies)

    async def do(self, method: amqp.Method) -> Reply:
        self.vhost.tell(Request(method, self.inbox, 1))
        return await asyncio.wait_for(self.replies.get(), 5)

    async def problems(self) -> list[str]:
        """Let every exchange actor catch up with the vhost, then ask it what disagrees."""
        described = await self.vhost.ask(Describe(), block=False)
        for exchange in described["exchanges"]:
            ref = self.runtime.lookup(exchange["actor"])
            if ref is not None:
                await ref.ask(Describe(), block=False)
        return await self.vhost.proxy().consistency_problems()


def random_method(rng: random.Random) -> amqp.Method:
    """One random declare, bind, unbind or delete among a few exchanges and queues."""
    x, y = f"x{rng.randrange(6)}", f"x{rng.randrange(6)}"
    q = f"q{rng.randrange(5)}"
    key = rng.choice(["a", "b", "#"])
    return rng.choice(
        [
            lambda: amqp.ExchangeDeclare(
                exchange=x,
                type=["direct", "fanout", "topic", "headers"][int(x[1:]) % 4],
                auto_delete=int(x[1:]) % 2 == 0,
            ),
            lambda: amqp.QueueDeclare(queue=q),
            lambda: amqp.QueueBind(queue=q, exchange=x, routing_key=key),
            lambda: amqp.QueueBind(queue=q, exchange=x, routing_key=key, arguments={"n": 1}),
            lambda: amqp.QueueUnbind(queue=q, exchange=x, routing_key=key),
            lambda: amqp.ExchangeBind(destination=y, source=x, routing_key=key),
            lambda: amqp.ExchangeUnbind(destination=y, source=x, routing_key=key),
            lambda: amqp.ExchangeDelete(exchange=x, if_unused=rng.random() < 0.5),
            lambda: amqp.QueueDelete(queue=q),
        ]
    )()


@pytest.mark.parametrize("seed", range(4))
def test_vhost_index_and_routers_agree_after_random_operations(runtime: Runtime, seed: int) -> None:
    async def scenario() -> list[list[str]]:
        driver = Driver(runtime)
        rng = random.Random(seed)
        found = []
        for step in range(400):
            await driver.do(random_method(rng))
            if step % 50 == 49:
                found.append(await driver.problems())
        return found

    assert on_loop(runtime, scenario()) == [[]] * 8


def test_reply_names_keep_the_index_consistent(runtime: Runtime) -> None:
    """Direct reply-to names are bound on the default exchange outside the binding index."""

    async def scenario() -> list[list[str]]:
        driver = Driver(runtime)
        name = REPLY_PREFIX + "t"
        dest = runtime.start(ReplyToActor, driver.inbox, name, "test")
        driver.vhost.tell(AddReplyName(name, dest, driver.inbox, None))
        await asyncio.wait_for(driver.replies.get(), 5)  # bound
        await driver.do(amqp.QueueDeclare(queue="q"))
        found = [await driver.problems()]
        driver.vhost.tell(RemoveReplyName(name))
        found.append(await driver.problems())
        return found

    assert on_loop(runtime, scenario()) == [[], []]


@pytest.mark.parametrize(("loop_back", "left"), [(False, []), (True, ["a", "b", "c"])])
def test_auto_delete_cascade(runtime: Runtime, loop_back: bool, left: list[str]) -> None:
    """a -> b -> c -> q, all auto-delete exchanges: deleting q takes c, then b, then a --
    unless c is also bound back to a, which keeps c (and so everything) in use."""

    async def scenario() -> tuple[list[str], list[str]]:
        driver = Driver(runtime)
        for name in ("a", "b", "c"):
            await driver.do(amqp.ExchangeDeclare(exchange=name, type="fanout", auto_delete=True))
        await driver.do(amqp.QueueDeclare(queue="q"))
        await driver.do(amqp.ExchangeBind(destination="b", source="a"))
        await driver.do(amqp.ExchangeBind(destination="c", source="b"))
        if loop_back:
            await driver.do(amqp.ExchangeBind(destination="a", source="c"))
        await driver.do(amqp.QueueBind(queue="q", exchange="c"))
        await driver.do(amqp.QueueDelete(queue="q"))
        described = await driver.vhost.ask(Describe(), block=False)
        names = sorted(x["name"] for x in described["exchanges"] if x["name"] in ("a", "b", "c"))
        return names, await driver.problems()

    assert on_loop(runtime, scenario()) == (left, [])
