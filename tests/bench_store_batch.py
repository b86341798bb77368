"""Load generator: a persistent flood with publisher confirms, for the store's group commits.

Run: PYTHONPATH=. python tests/bench_store_batch.py --port PORT [--admin-port APORT]

Against a broker already listening on 127.0.0.1:PORT (this script starts nothing), e.g.:

    python -m dispatchd --port 5813 --admin-port 15813 --data-dir /tmp/d --log-level warning &

``--publishers`` (4) raw connections each declare nothing but publish 1 KiB (``--size``)
persistent messages to the durable queue ``bench.store`` (declared once, purged first) through
the default exchange, in confirm mode, keeping ``--window`` (100) unconfirmed, for
``--seconds`` (20); ``--flooders`` more publish the same without confirms, as fast as TCP
takes them (the flood that made one commit 1 M rows). Reported: confirmed msg/s, confirm
latency p50/p99/max (publish write to basic.ack, multiple acks included), and, with
``--admin-port``, the largest ``dispatchd_store_commit_last_seconds`` seen by polling /metrics
every 0.1 s (and ``dispatchd_store_commit_max_seconds`` where the broker has it), the mean
commit (``_sum``/``_count``) over the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from collections import deque

from dispatchd.wire import spec
from dispatchd.wire.frames import FRAME_METHOD, content_frames, method_frame
from tests.bench_ttl import BenchError, Connection

QUEUE = "bench.store"


def publisher(
    port: int, size: int, window: int, until: float, out: list[float], totals: list[int]
) -> None:
    """Publish with ``window`` outstanding until ``until``; append each confirm's latency."""
    conn = Connection(port, timeout=30.0)
    conn.rpc(spec.ConfirmSelect(), spec.ConfirmSelectOk)
    props = spec.BasicProperties(delivery_mode=2).encode()
    frame = method_frame(1, spec.BasicPublish(exchange="", routing_key=QUEUE).encode())
    frame += content_frames(1, 60, props, b"x" * size, conn.frame_max)
    sent: deque[float] = deque()  # send time of each unconfirmed publish, tag order
    confirmed = 0

    while True:
        now = time.perf_counter()
        if now < until:
            burst = window - len(sent)
            if burst > 0:
                conn.sock.sendall(frame * burst)
                sent.extend([now] * burst)
        elif not sent:
            break
        frame_type, _channel, payload = conn._frame()
        if frame_type != FRAME_METHOD:
            continue
        method = spec.decode_method(payload)
        if not isinstance(method, spec.BasicAck):
            raise BenchError(f"publisher got {method!r}")
        upto = method.delivery_tag  # tags are in order: single or multiple, all up to it
        got = time.perf_counter()
        while confirmed < upto:
            out.append(got - sent.popleft())
            confirmed += 1
    totals.append(confirmed)
    conn.close()


def flooder(port: int, size: int, until: float) -> None:
    """Publish persistent messages without confirms, as fast as TCP takes them, until ``until``."""
    conn = Connection(port, timeout=30.0)
    props = spec.BasicProperties(delivery_mode=2).encode()
    frame = method_frame(1, spec.BasicPublish(exchange="", routing_key=QUEUE).encode())
    frame += content_frames(1, 60, props, b"x" * size, conn.frame_max)
    blob = frame * 100
    while time.perf_counter() < until:
        conn.sock.sendall(blob)
    conn.close()


def metric(admin_port: int, name: str) -> float:
    """One value from /metrics (0.0 if absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> None:
    """Run the flood and print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, default=0)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--flooders", type=int, default=0, help="publishers without confirms")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    setup = Connection(args.port)
    setup.rpc(spec.QueueDeclare(queue=QUEUE, durable=True), spec.QueueDeclareOk)
    setup.rpc(spec.QueuePurge(queue=QUEUE), spec.QueuePurgeOk)
    base = (0.0, 0.0)
    if args.admin_port:
        base = (
            metric(args.admin_port, "dispatchd_store_commit_seconds_sum"),
            metric(args.admin_port, "dispatchd_store_commit_seconds_count"),
        )
    latencies: list[float] = []
    totals: list[int] = []
    started = time.perf_counter()
    until = started + args.seconds
    threads = [
        threading.Thread(
            target=publisher,
            args=(args.port, args.size, args.window, until, latencies, totals),
        )
        for _ in range(args.publishers)
    ]
    threads += [
        threading.Thread(target=flooder, args=(args.port, args.size, until))
        for _ in range(args.flooders)
    ]
    for thread in threads:
        thread.start()
    largest = 0.0
    while any(t.is_alive() for t in threads):
        if args.admin_port:
            largest = max(largest, metric(args.admin_port, "dispatchd_store_commit_last_seconds"))
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    result = {
        "label": args.label,
        "confirmed": sum(totals),
        "msg_per_s": round(sum(totals) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(statistics.quantiles(latencies, n=100)[98] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }
    if args.admin_port:
        total, count = (
            metric(args.admin_port, "dispatchd_store_commit_seconds_sum") - base[0],
            metric(args.admin_port, "dispatchd_store_commit_seconds_count") - base[1],
        )
        result["largest_commit_ms_seen"] = round(largest * 1000, 1)
        result["commits"] = int(count)
        result["mean_commit_ms"] = round(total / count * 1000, 1) if count else None
    setup.rpc(spec.QueuePurge(queue=QUEUE), spec.QueuePurgeOk)
    setup.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
