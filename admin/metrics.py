"""``/metrics``: the broker in Prometheus' text exposition format (version 0.0.4).

Everything comes from one snapshot. Counters (``*_total``) only grow: broker-wide message
totals include the channels that have closed (kept by their vhosts, see ``actors/stats.py``);
per-queue totals live as long as the queue. The store's commit figures are the broker's
``CommitStats`` (``store/actor.py``), recorded on the loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dispatchd.admin.records import Records
from dispatchd.alarms import DISK, MEMORY

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Family:
    """One metric family: HELP, TYPE and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help_text
        self.samples: list[tuple[dict[str, str], float]] = []
        self.sample_names: tuple[str, ...] = ()  # per-sample suffixes (a summary's _sum, _count)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        suffixes = self.sample_names or ("",) * len(self.samples)
        for suffix, (labels, value) in zip(suffixes, self.samples, strict=True):
            number = repr(float(value)) if isinstance(value, float) else str(value)
            yield f"{self.name}{suffix}{_labels(labels)} {number}"


def render(records: Records) -> str:
    """The whole exposition for one snapshot."""
    families: list[_Family] = []

    def family(name: str, kind: str, help_text: str) -> _Family:
        f = _Family(f"dispatchd_{name}", kind, help_text)
        families.append(f)
        return f

    snap = records.snap
    queues = records.queues()
    overview = records.overview(0)
    totals = overview["object_totals"]
    for name, help_text in (
        ("connections", "Open AMQP connections."),
        ("channels", "Open AMQP channels."),
        ("consumers", "Consumers on all queues."),
        ("queues", "Queues in all vhosts."),
        ("exchanges", "Exchanges in all vhosts."),
    ):
        family(name, "gauge", help_text).add(totals[name])

    stats = records.message_totals()
    for key, name, help_text in (
        ("publish", "messages_published_total", "Messages published on any channel."),
        ("deliver_get", "messages_delivered_total", "Messages delivered or got on any channel."),
        ("ack", "messages_acked_total", "Deliveries acknowledged on any channel."),
    ):
        family(name, "counter", help_text).add(stats[key])

    per_queue = (
        ("messages_ready", "queue_messages_ready", "gauge", "Messages ready for delivery."),
        ("messages_unacknowledged", "queue_messages_unacked", "gauge", "Delivered, not acked."),
        ("messages", "queue_messages", "gauge", "Ready plus unacknowledged messages."),
        ("consumers", "queue_consumers", "gauge", "Consumers on the queue."),
    )
    queue_families = [(field, family(name, kind, h)) for field, name, kind, h in per_queue]
    queue_stats = (
        ("publish", "queue_messages_published_total", "Messages enqueued since it was declared."),
        ("deliver_get", "queue_messages_delivered_total", "Messages delivered or got from it."),
        ("ack", "queue_messages_acked_total", "Deliveries from it acknowledged."),
    )
    stat_families = [(key, family(name, "counter", h)) for key, name, h in queue_stats]
    for q in queues:
        if q["state"] != "running":
            continue  # it did not answer in time: no numbers rather than made-up ones
        labels = {"vhost": q["vhost"], "queue": q["name"]}
        for field, f in queue_families:
            f.add(q[field], **labels)
        for key, f in stat_families:
            f.add(q["message_stats"][key], **labels)

    count: dict[str, int] = defaultdict(int)
    depth: dict[str, int] = defaultdict(int)
    deepest: dict[str, int] = defaultdict(int)
    oldest: dict[str, float] = defaultdict(float)
    for info in snap.actors:
        count[info.kind] += 1
        depth[info.kind] += info.depth
        deepest[info.kind] = max(deepest[info.kind], info.depth)
        oldest[info.kind] = max(oldest[info.kind], info.oldest_age_s)
    actor_families = (
        ("actors", "gauge", "Live actors.", count),
        ("mailbox_depth", "gauge", "Messages waiting in the mailboxes of all actors.", depth),
        ("mailbox_depth_max", "gauge", "Deepest single mailbox.", deepest),
        (
            "mailbox_oldest_message_age_seconds",
            "gauge",
            "Age of the oldest message waiting in any mailbox.",
            oldest,
        ),
    )
    for name, kind, help_text, values in actor_families:
        f = family(name, kind, f"{help_text} By actor kind.")
        for actor_kind in sorted(values):
            f.add(values[actor_kind], kind=actor_kind)

    if any(x.protocol == "amqp/ssl" for x in snap.listeners):
        failures = family(
            "tls_handshake_failures_total", "counter", "AMQPS handshakes that failed, by reason."
        )
        for reason, n in sorted(snap.tls_handshake_failures.items()):
            failures.add(n, reason=reason)
    res = snap.resources
    if res is not None:
        for name, help_text, value in (
            ("memory_used_bytes", "Resident set size of the broker process.", res.mem_used),
            ("memory_limit_bytes", "Memory high watermark.", res.mem_limit),
            ("disk_free_bytes", "Free space on the data dir's filesystem.", res.disk_free),
            ("disk_free_limit_bytes", "Disk free limit.", res.disk_free_limit),
        ):
            family(name, "gauge", help_text).add(value)
        alarm = family("resource_alarm", "gauge", "1 while the resource's alarm is on.")
        for resource in (MEMORY, DISK):
            alarm.add(int(resource in res.alarms), resource=resource)
    commits = snap.commits
    if commits is not None:
        latency = family("store_commit_seconds", "summary", "Store commit latency (group commits).")
        latency.samples += [({}, commits.seconds_total), ({}, commits.commits)]
        latency.sample_names = ("_sum", "_count")
        family("store_commit_last_seconds", "gauge", "Duration of the latest store commit.").add(
            commits.last_seconds
        )
        family("store_commit_max_seconds", "gauge", "Duration of the longest store commit.").add(
            commits.max_seconds
        )
        family("store_commit_failures_total", "counter", "Store commits that failed.").add(
            commits.failures
        )
        family("store_rows_written_total", "counter", "Message rows written by the store.").add(
            commits.rows
        )
    return "\n".join(line for f in families for line in f.lines()) + "\n"
