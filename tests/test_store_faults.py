"""Store faults over real sockets: a full disk confirms nothing it lost; bad files fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.conftest import ROOT, BrokerProcess, free_port
from tests.support import get_all

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the data dir (root only); unmounted afterwards."""
    path = tmp_path / "data"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    done = _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_confirms_only_what_was_committed(tiny_disk: Path, tmp_path: Path) -> None:
    # The disk alarm (50 MB by default) would block the publisher before the disk fills: this
    # test is about what the store does when a commit fails, so the alarm is set below it.
    no_alarm = ["--disk-free-limit", "1"]
    broker = BrokerProcess(free_port(), tiny_disk, tmp_path / "broker.log", no_alarm).start()
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("fill", durable=True)
    ch.confirm_delivery()
    confirmed: list[int] = []
    body = os.urandom(4096)
    refused = (
        pika.exceptions.ChannelClosedByBroker,  # 541 on the channel ...
        pika.exceptions.ConnectionClosedByBroker,  # ... or the connection (541 is a hard error)
        pika.exceptions.NackError,
    )
    with pytest.raises(refused) as info:
        for i in range(10_000):  # 40 MiB: far more than the disk holds
            ch.basic_publish("", "fill", i.to_bytes(4, "big") + body, PERSISTENT)
            confirmed.append(i)
    if not isinstance(info.value, pika.exceptions.NackError):
        assert info.value.reply_code == 541, info.value
    assert confirmed, "the disk filled before anything was confirmed"
    if conn.is_open:
        conn.close()
    broker.stop()
    assert _mount(["-o", "remount,size=64m", str(tiny_disk)]).returncode == 0  # space again
    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    got = []
    for _method, _props, stored in get_all(ch, "fill"):
        got.append(int.from_bytes(stored[:4], "big"))
        assert stored[4:] == body
    conn.close()
    broker.stop()
    assert got[: len(confirmed)] == confirmed, "a confirmed message was lost"
    assert got == sorted(set(got))


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_foreign_file_at_the_db_path_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "dispatchd.db").write_bytes(content)
    args = ["--port", str(free_port()), "--admin-port", "0", "--data-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "dispatchd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert line.startswith("dispatchd: cannot open the store"), line
