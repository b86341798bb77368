"""Load generator: the cost of TLS, plain TCP against AMQPS, on running brokers.

Run: python tests/bench_tls.py --broker NAME:PORT:TLS_PORT [--broker ...] --ca CA.pem
     [--scenarios e2e-autoack,confirm,confirm-persistent] [--seconds S] [--rounds R]
     [--settle S] [--json]

Run from the repository root, with each broker already listening on 127.0.0.1 (this script
starts nothing itself), plain AMQP on PORT and AMQPS on TLS_PORT with a certificate for
``localhost`` that ``--ca`` verifies, e.g.:

    python -m dispatchd --port 5812 --tls-port 5813 --tls-cert server.pem \\
        --tls-key server.key --admin-port 0 --data-dir /tmp/d --log-level warning &
    PYTHONPATH=. python tests/bench_tls.py --broker dispatchd:5812:5813 --ca ca.pem

Certificates from tests/support/certs.py ``make_certs``. RabbitMQ (3.10.8) gets its TLS
listener from a rabbitmq.conf named by ``RABBITMQ_CONFIG_FILE`` (the path with its .conf),
readable by the rabbitmq user, and the environment of /work/shared/bench/peers.sh otherwise:

    listeners.ssl.1 = 127.0.0.1:5823
    ssl_options.cacertfile = /tmp/certs/ca.pem
    ssl_options.certfile = /tmp/certs/server.pem
    ssl_options.keyfile = /tmp/certs/server.key
    ssl_options.verify = verify_none

    ... --broker dispatchd:5812:5813 --broker rabbitmq:5822:5823 --settle 60

Scenarios, with 1 KiB bodies (``--size``) through the direct exchange ``bench.direct`` to one
fresh queue, as the bench harness's (which has no TLS). Each publishes for ``--seconds``
(default 6), then waits for the last delivery or confirm:

- ``e2e-autoack``: two connections, one autoack consumer attached first, then one publisher
  writes 100 messages per ``sendall`` as fast as TCP takes them; msg/s is the messages sent
  over the time from the first write to the last delivery;
- ``confirm``: one connection in confirm mode keeps ``--window`` (100) publishes unconfirmed,
  transient messages to a non-durable queue (the wire and the broker, no disk); msg/s is the
  messages over the time until the last confirm, p50/p99 are publish to confirm in ms;
- ``confirm-persistent``: the same with ``delivery_mode=2`` to a durable queue (the harness's
  ``confirm``: the store's commits decide).

Rounds interleave brokers and transports (for each round, each scenario: broker A plain, A TLS,
B plain, B TLS), waiting up to ``--settle`` seconds for an idle host before each run; the
summary gives medians, TLS/plain per broker and every broker against the last one named
(``--broker``). TLS is whatever the client's default context and the broker agree on (the
version and cipher are printed). Results carry the broker's CPU (% of one core), this client's
and everyone else's, as tests/bench_ttl.py, whose raw client (given a TLS context) and CPU meter
this script uses.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import struct
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from dispatchd.wire import spec
from dispatchd.wire.frames import FRAME_METHOD, content_frames, method_frame
from tests.bench_ttl import (
    EXCHANGE,
    RECV_SIZE,
    BenchError,
    Connection,
    CpuMeter,
    find_broker_pid,
)

SCENARIOS = ("e2e-autoack", "confirm", "confirm-persistent")
TRANSPORTS = ("plain", "tls")
CHUNK = 100  # e2e: messages per sendall (~100 KiB with 1 KiB bodies)
_HEAD = struct.Struct(">BHI")
_DELIVER_IDS = b"\x00\x3c\x00\x3c"  # class 60, method 60: basic.deliver


@dataclass(frozen=True)
class Target:
    """A broker under test: its name, plain and AMQPS ports, and process (for its CPU)."""

    name: str
    port: int
    tls_port: int
    pid: int | None

    @classmethod
    def parse(cls, text: str) -> Target:
        """``NAME:PORT:TLS_PORT``."""
        name, port, tls_port = text.split(":")
        return cls(name, int(port), int(tls_port), find_broker_pid(int(port)))


@dataclass
class Result:
    """One measured run."""

    scenario: str
    broker: str
    transport: str
    round: int
    count: int
    secs: float
    msg_s: float
    p50_ms: float | None
    p99_ms: float | None
    tls: str  # version and cipher, or "" over plain TCP
    broker_cpu_pct: float
    client_cpu_pct: float
    other_cpu_pct: float


def wait_idle(seconds: float) -> None:
    """Until one second with under 15% of all CPUs busy, at most ``seconds`` (as run.sh)."""

    def sample() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4]

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        total, idle = sample()
        time.sleep(1)
        total2, idle2 = sample()
        if (total2 - total) - (idle2 - idle) < 0.15 * (total2 - total):
            return


def one_publish(queue: str, size: int, persistent: bool, frame_max: int) -> bytes:
    """The frames of one basic.publish of ``size`` bytes to ``queue`` via bench.direct."""
    props = spec.BasicProperties(delivery_mode=2 if persistent else 1).encode()
    frames = method_frame(1, spec.BasicPublish(exchange=EXCHANGE, routing_key=queue).encode())
    return frames + content_frames(1, 60, props, b"x" * size, frame_max)


def describe_tls(sock: socket.socket) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384`` for a TLS socket, "" for a plain one."""
    if isinstance(sock, ssl.SSLSocket):
        cipher = sock.cipher()
        return f"{sock.version()} {cipher[0] if cipher else '?'}"
    return ""


def connect(target: Target, context: ssl.SSLContext | None) -> Connection:
    """A connection to ``target``: its AMQPS port with ``context``, else its plain port."""
    return Connection(target.tls_port if context else target.port, context=context)


class DeliveryCounter(threading.Thread):
    """Counts basic.deliver frames on a consumer socket until ``expected`` (set once the
    publisher is done) have come; ``last_at`` is when the last of them arrived.

    Only frame headers are looked at (plus the 4 id bytes of method frames), as in
    tests/bench_ttl.py; a short socket timeout lets it notice ``expected`` when idle.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.deadline = sock, deadline
        self.count = 0
        self.expected: int | None = None
        self.last_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:  # noqa: D102
        try:
            self._count()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _count(self) -> None:
        head = _HEAD.unpack_from
        buf = bytearray()
        self.sock.settimeout(0.05)
        while self.expected is None or self.count < self.expected:
            if time.perf_counter() > self.deadline:
                raise BenchError(f"only {self.count} deliveries in time")
            try:
                data = self.sock.recv(RECV_SIZE)
            except TimeoutError:
                continue
            if not data:
                raise BenchError(f"consumer connection closed after {self.count} deliveries")
            buf += data
            end, pos, count = len(buf), 0, self.count
            while end - pos >= 7:
                frame_type, _channel, size = head(buf, pos)
                stop = pos + 8 + size
                if stop > end:
                    break
                if frame_type == FRAME_METHOD:
                    if buf[pos + 7 : pos + 11] != _DELIVER_IDS:
                        method = spec.decode_method(bytes(buf[pos + 7 : stop - 1]))
                        raise BenchError(f"consumer got {method!r} after {count} deliveries")
                    count += 1
                pos = stop
            del buf[:pos]
            if count != self.count:
                self.count, self.last_at = count, time.perf_counter()


def e2e(
    args: argparse.Namespace, target: Target, context: ssl.SSLContext | None, queue: str
) -> dict:
    """Autoack consumer on its own connection, then the publisher writes for ``--seconds``."""
    pub = connect(target, context)
    consumer: Connection | None = connect(target, context)
    try:
        declare(pub, queue, durable=False)
        consumer.rpc(spec.BasicConsume(queue=queue, no_ack=True), spec.BasicConsumeOk)
        chunk = one_publish(queue, args.size, False, pub.frame_max) * CHUNK
        counter = DeliveryCounter(consumer.sock, time.perf_counter() + args.time)
        counter.start()
        pub.sock.settimeout(args.time)  # a broker under load may stop reading for a while
        meter = CpuMeter(target.pid)
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < args.seconds and counter.error is None:
            pub.sock.sendall(chunk)
            sent += CHUNK
        counter.expected = sent
        counter.join(args.time)
        if counter.error is not None:
            raise BenchError(f"consumer: {counter.error}")
        cpu = meter.stop()
        consumer.close()
        consumer = None
        pub.rpc(spec.QueueDelete(queue=queue), spec.QueueDeleteOk)
        secs = counter.last_at - start
        return {"count": sent, "secs": secs, "tls": describe_tls(pub.sock), **cpu}
    finally:
        if consumer is not None:
            consumer.close()
        pub.close()


def confirm(
    args: argparse.Namespace,
    target: Target,
    context: ssl.SSLContext | None,
    queue: str,
    persistent: bool,
) -> dict:
    """Publish for ``--seconds`` with at most ``--window`` unconfirmed; msg/s until the last
    confirm."""
    conn = connect(target, context)
    try:
        declare(conn, queue, durable=persistent)
        conn.rpc(spec.ConfirmSelect(), spec.ConfirmSelectOk)
        one = one_publish(queue, args.size, persistent, conn.frame_max)
        window, sock = args.window, conn.sock
        sock.settimeout(args.time)
        outstanding: deque[tuple[int, float]] = deque()  # (delivery tag, sent at)
        latencies: list[float] = []
        sent = 0
        meter = CpuMeter(target.pid)
        start = time.perf_counter()
        while True:
            sending = time.perf_counter() - start < args.seconds
            if not sending and not outstanding:
                break
            room = window - len(outstanding) if sending else 0
            if room > 0:
                now = time.perf_counter()
                sock.sendall(one * room)
                outstanding.extend((tag, now) for tag in range(sent + 1, sent + room + 1))
                sent += room
            data = sock.recv(RECV_SIZE)
            if not data:
                raise BenchError(f"broker closed the connection after {len(latencies)} confirms")
            now = time.perf_counter()
            for frame_type, _channel, payload in conn.reader.feed(data):
                if frame_type != FRAME_METHOD:
                    continue
                method = spec.decode_method(payload)
                if not isinstance(method, spec.BasicAck):
                    raise BenchError(f"expected basic.ack, got {method!r}")
                if method.multiple:
                    while outstanding and outstanding[0][0] <= method.delivery_tag:
                        latencies.append(now - outstanding.popleft()[1])
                else:
                    entry = next(e for e in outstanding if e[0] == method.delivery_tag)
                    outstanding.remove(entry)
                    latencies.append(now - entry[1])
        end = time.perf_counter()
        cpu = meter.stop()
        conn.rpc(spec.QueueDelete(queue=queue), spec.QueueDeleteOk)
        latencies.sort()
        return {
            "count": sent,
            "secs": end - start,
            "tls": describe_tls(sock),
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            **cpu,
        }
    finally:
        conn.close()


def declare(conn: Connection, queue: str, durable: bool) -> None:
    """bench.direct (durable, as the harness has it) and ``queue`` bound to it by its name."""
    conn.rpc(
        spec.ExchangeDeclare(exchange=EXCHANGE, type="direct", durable=True),
        spec.ExchangeDeclareOk,
    )
    conn.rpc(spec.QueueDeclare(queue=queue, durable=durable), spec.QueueDeclareOk)
    conn.rpc(spec.QueueBind(queue=queue, exchange=EXCHANGE, routing_key=queue), spec.QueueBindOk)


def run_once(
    args: argparse.Namespace, scenario: str, target: Target, transport: str, rnd: int
) -> Result:
    """One scenario on one broker over one transport, on a fresh queue (deleted after)."""
    context = ssl.create_default_context(cafile=args.ca) if transport == "tls" else None
    queue = f"bench.tls.{os.getpid()}.{scenario}.{transport}.{rnd}"
    if scenario == "e2e-autoack":
        out = e2e(args, target, context, queue)
    else:
        out = confirm(args, target, context, queue, persistent=scenario == "confirm-persistent")
    return Result(
        scenario,
        target.name,
        transport,
        rnd,
        out["count"],
        out["secs"],
        out["count"] / out["secs"],
        out.get("p50_ms"),
        out.get("p99_ms"),
        out["tls"],
        out["broker_cpu_pct"],
        out["client_cpu_pct"],
        out["other_cpu_pct"],
    )


def summarize(results: list[Result], targets: list[Target]) -> list[dict[str, object]]:
    """Medians per scenario, broker and transport; TLS/plain, and each broker / the last."""
    rows: list[dict[str, object]] = []
    scenarios = [s for s in SCENARIOS if any(r.scenario == s for r in results)]
    for scenario in scenarios:
        medians: dict[tuple[str, str], float] = {}
        for target in targets:
            for transport in TRANSPORTS:
                runs = [
                    r
                    for r in results
                    if (r.scenario, r.broker, r.transport) == (scenario, target.name, transport)
                ]
                if not runs:
                    continue
                row: dict[str, object] = {
                    "scenario": scenario,
                    "broker": target.name,
                    "transport": transport,
                    "runs": len(runs),
                    "min": min(r.msg_s for r in runs),
                    "max": max(r.msg_s for r in runs),
                }
                for key in ("msg_s", "broker_cpu_pct", "client_cpu_pct", "other_cpu_pct"):
                    row[key] = statistics.median(getattr(r, key) for r in runs)
                if runs[0].p50_ms is not None:
                    row["p50_ms"] = statistics.median(r.p50_ms or 0.0 for r in runs)
                row["tls"] = runs[0].tls
                medians[target.name, transport] = float(row["msg_s"])  # type: ignore[arg-type]
                rows.append(row)
        reference = targets[-1].name
        for row in rows:
            if row["scenario"] != scenario:
                continue
            key = (str(row["broker"]), str(row["transport"]))
            plain = medians.get((key[0], "plain"))
            row["tls_vs_plain"] = (
                medians[key] / plain if row["transport"] == "tls" and plain else None
            )
            other = medians.get((reference, key[1]))
            row[f"vs_{reference}"] = medians[key] / other if other else None
    return rows


def print_table(rows: list[dict[str, object]], reference: str) -> None:
    """The medians as a Markdown table."""
    print(
        f"\n| scenario | broker | transport | msg/s | min–max | TLS/plain | vs {reference} "
        "| p50 ms | broker CPU % | client CPU % | other CPU % | TLS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ratio(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else "-"

    for row in rows:
        p50 = row.get("p50_ms")
        print(
            f"| {row['scenario']} | {row['broker']} | {row['transport']} | {row['msg_s']:,.0f} "
            f"| {row['min']:,.0f}–{row['max']:,.0f} | {ratio(row['tls_vs_plain'])} "
            f"| {ratio(row[f'vs_{reference}'])} | {ratio(p50)} "
            f"| {row['broker_cpu_pct']:.0f} | {row['client_cpu_pct']:.0f} "
            f"| {row['other_cpu_pct']:.0f} | {row['tls'] or '-'} |"
        )


def main() -> None:
    """Run the rounds and print one line per run, then the medians."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--broker", action="append", required=True, type=Target.parse, help="NAME:PORT:TLS_PORT"
    )
    parser.add_argument("--ca", required=True, help="the CA that signed the brokers' certificate")
    parser.add_argument("--scenarios", default="e2e-autoack,confirm")
    parser.add_argument("--seconds", type=float, default=6.0, help="publish for S s a run")
    parser.add_argument("--window", type=int, default=100, help="unconfirmed publishes at most")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.0, help="wait up to S s for idle")
    parser.add_argument("--time", type=float, default=120.0, help="give up a run after S s")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
    targets: list[Target] = args.broker
    results: list[Result] = []
    for rnd in range(1, args.rounds + 1):
        for scenario in scenarios:
            for target in targets:
                for transport in TRANSPORTS:
                    if args.settle:
                        wait_idle(args.settle)
                    result = run_once(args, scenario, target, transport, rnd)
                    results.append(result)
                    if args.json:
                        print(json.dumps({"kind": "run", **asdict(result)}), flush=True)
                    else:
                        print(
                            f"round {rnd} {scenario:<18} {target.name:<10} {transport:<5} "
                            f"{result.msg_s:>9,.0f} msg/s  broker {result.broker_cpu_pct:5.1f}%  "
                            f"client {result.client_cpu_pct:5.1f}%  "
                            f"other {result.other_cpu_pct:5.1f}%  {result.tls}",
                            flush=True,
                        )
    rows = summarize(results, targets)
    if args.json:
        for row in rows:
            print(json.dumps({"kind": "median", **row}), flush=True)
    else:
        print_table(rows, targets[-1].name)


if __name__ == "__main__":
    main()
