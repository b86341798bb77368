"""AMQPS: EXTERNAL login from client certificates, verification, refusals, reload, start-up.

The client matrix (pika, aio-pika, py-amqp, kombu, amqp-tools over TLS) is
``test_tls_clients.py``; certificates are made for the session (``tests/support/certs.py``).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.access_support import ctl_command, refusal
from tests.conformance.rawclient import RawClient
from tests.conftest import ROOT, BrokerProcess, free_port, tls_args
from tests.support import WAIT, wait_until
from tests.support.certs import CLIENT_SUBJECT, Certs, Pair, make_certs

EXTERNAL = ("--auth-mechanisms", "PLAIN,AMQPLAIN,EXTERNAL")


def client_context(certs: Certs, pair: Pair | None = None) -> ssl.SSLContext:
    """A client context trusting the test CA, presenting ``pair`` if given."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


def tls_params(
    broker: BrokerProcess, context: ssl.SSLContext, **kwargs: object
) -> pika.ConnectionParameters:
    """pika parameters for the broker's AMQPS port."""
    return pika.ConnectionParameters(
        "localhost",
        broker.tls_port,
        ssl_options=pika.SSLOptions(context, "localhost"),
        connection_attempts=1,
        **kwargs,  # type: ignore[arg-type]
    )


def start(base: Path, certs: Certs, *more: str, admin: bool = False) -> BrokerProcess:
    """A broker with an AMQPS listener and ``more`` flags."""
    base.mkdir(parents=True, exist_ok=True)
    tls_port = free_port()
    extra = tls_args(certs, tls_port, *more)
    if admin:
        extra += ["--admin-port", str(free_port())]
    proc = BrokerProcess(free_port(), base / "data", base / "broker.log", extra)
    proc.tls_port = tls_port
    return proc.start()


@pytest.fixture
def broker_factory(tmp_path: Path, certs: Certs) -> Iterator:
    started: list[BrokerProcess] = []

    def make(*more: str, admin: bool = False) -> BrokerProcess:
        proc = start(tmp_path / f"b{len(started)}", certs, *more, admin=admin)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def ctl(broker: BrokerProcess, *args: str) -> str:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*ctl_command(broker.data_dir), *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def certificate_user(broker: BrokerProcess, name: str) -> None:
    """A user who logs in with a certificate only: no password, every permission on /."""
    ctl(broker, "add_user", name, "unused")
    ctl(broker, "clear_password", name)
    ctl(broker, "set_permissions", name, ".*", ".*", ".*")


def mechanisms(port: int, context: ssl.SSLContext | None = None) -> str:
    """The mechanisms connection.start offers on ``port``."""
    client = RawClient(port)
    if context is not None:
        client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    with client:
        client.send(b"AMQP\x00\x00\x09\x01")
        start_method = client.recv_method()
        return start_method.method.mechanisms.decode()


# ----- EXTERNAL


@pytest.fixture(scope="module")
def external_broker(
    certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """verify peer (client certificates optional), EXTERNAL offered, the admin API on."""
    proc = start(
        tmp_path_factory.mktemp("external"), certs, "--tls-verify", "peer", *EXTERNAL, admin=True
    )
    certificate_user(proc, CLIENT_SUBJECT)
    yield proc
    proc.stop()


def test_external_is_offered_on_tls_connections_only(
    external_broker: BrokerProcess, certs: Certs
) -> None:
    assert mechanisms(external_broker.port) == "PLAIN AMQPLAIN"
    assert mechanisms(external_broker.tls_port, client_context(certs)) == "PLAIN AMQPLAIN EXTERNAL"


def test_external_login_names_the_user_after_the_certificate(
    external_broker: BrokerProcess, certs: Certs
) -> None:
    params = tls_params(
        external_broker,
        client_context(certs, certs.client),
        credentials=pika.credentials.ExternalCredentials(),
        client_properties={"connection_name": "by-certificate"},
    )
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"signed")
        assert wait_until(lambda: channel.basic_get(queue, auto_ack=True)[2]) == b"signed"
        connection.update_secret("a token", "refresh")  # accepted, as RabbitMQ's internal db
        assert channel.queue_declare(queue, passive=True).method.queue == queue
        listing = ctl(
            external_broker,
            "list_connections",
            "user",
            "auth_mechanism",
            "ssl",
            "peer_cert_subject",
            "--formatter",
            "json",
        )
        rows = json.loads(listing[listing.index("[") :])
        assert {
            "user": CLIENT_SUBJECT,
            "auth_mechanism": "EXTERNAL",
            "ssl": True,
            "peer_cert_subject": CLIENT_SUBJECT,
        } in rows


def test_external_without_a_certificate_is_refused(
    external_broker: BrokerProcess, certs: Certs
) -> None:
    params = tls_params(
        external_broker, client_context(certs), credentials=pika.credentials.ExternalCredentials()
    )
    code, text = refusal(lambda: pika.BlockingConnection(params))
    assert (code, text) == (
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details "
        "see the broker logfile.",
    )
    assert wait_until(
        lambda: (
            "EXTERNAL login refused: connection peer presented no TLS (x.509) certificate"
            in external_broker.log
        )
    )


def test_external_on_a_plain_connection_is_a_protocol_error(external_broker: BrokerProcess) -> None:
    with RawClient(external_broker.port) as client:
        outcome = client.handshake(mechanism="EXTERNAL", response=b"")
    assert outcome["stage"] == "tune"
    assert wait_until(lambda: "invalid authentication mechanism 'EXTERNAL'" in external_broker.log)


def test_a_password_still_logs_in_over_tls_with_a_certificate(
    external_broker: BrokerProcess, certs: Certs
) -> None:
    params = tls_params(external_broker, client_context(certs, certs.client))
    with pika.BlockingConnection(params) as connection:
        assert connection.channel().is_open


@pytest.mark.parametrize(
    ("flags", "user"),
    [
        (("--tls-cert-login-from", "common_name"), "client"),
        (("--tls-cert-login-from", "subject_alternative_name"), "client.example"),
        (
            (
                "--tls-cert-login-from",
                "subject_alternative_name",
                "--tls-cert-login-san-type",
                "email",
            ),
            "client@example.com",
        ),
        (
            (
                "--tls-cert-login-from",
                "subject_alternative_name",
                "--tls-cert-login-san-type",
                "other_name",
            ),
            "client@upn.example",
        ),
    ],
)
def test_cert_login_from_chooses_the_name(broker_factory, certs: Certs, flags, user) -> None:
    broker = broker_factory("--tls-verify", "peer", *EXTERNAL, *flags)
    params = tls_params(
        broker,
        client_context(certs, certs.client),
        credentials=pika.credentials.ExternalCredentials(),
    )
    code, _ = refusal(lambda: pika.BlockingConnection(params))
    assert code == 403  # no such user yet
    assert wait_until(
        lambda: f"EXTERNAL login refused: user '{user}' - invalid credentials" in broker.log
    )
    certificate_user(broker, user)
    with pika.BlockingConnection(params) as connection:
        assert connection.channel().is_open


def test_external_needs_peer_verification(broker_factory, certs: Certs) -> None:
    broker = broker_factory(*EXTERNAL)  # --tls-verify none: no certificate can be trusted
    params = tls_params(
        broker,
        client_context(certs, certs.client),
        credentials=pika.credentials.ExternalCredentials(),
    )
    assert refusal(lambda: pika.BlockingConnection(params))[0] == 403
    assert wait_until(lambda: "EXTERNAL login refused: TLS configuration is unsafe" in broker.log)


# ----- verification and handshake failures


def handshake_fails(port: int, context: ssl.SSLContext) -> bool:
    """Whether a TLS handshake with ``context`` (then reading from the socket) fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"AMQP\x00\x00\x09\x01")
                return not tls.recv(7)  # TLS 1.3: a refused client certificate shows here
    except (ssl.SSLError, ConnectionError):
        return True


def metric(broker: BrokerProcess, admin_port: int, name: str) -> dict[str, float]:
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/metrics")
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        text = answer.read().decode()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def admin_port_of(broker: BrokerProcess) -> int:
    return int(broker.extra_args[broker.extra_args.index("--admin-port") + 1])


def test_verify_peer_refuses_strangers_and_expired_certificates(
    external_broker: BrokerProcess, certs: Certs
) -> None:
    for pair in (certs.stranger, certs.expired):
        assert handshake_fails(external_broker.tls_port, client_context(certs, pair))
    assert wait_until(lambda: external_broker.log.count("TLS handshake with 127.0.0.1:") >= 2)
    failures = metric(
        external_broker, admin_port_of(external_broker), "dispatchd_tls_handshake_failures_total"
    )
    assert sum(failures.values()) >= 2, failures


def test_fail_if_no_peer_cert_refuses_a_client_without_one(broker_factory, certs: Certs) -> None:
    broker = broker_factory("--tls-verify", "peer", "--tls-fail-if-no-peer-cert")
    assert handshake_fails(broker.tls_port, client_context(certs))
    assert not handshake_fails(broker.tls_port, client_context(certs, certs.client))
    assert wait_until(lambda: "peer did not return a certificate" in broker.log)


def tls_1_1_client(certs: Certs) -> ssl.SSLContext:
    """A client that speaks only TLS 1.1 (with ciphers that let OpenSSL 3 offer it at all)."""
    old = client_context(certs)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    return old


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls_1_1_is_refused_by_default_and_allowed_when_listed(
    tls_broker: BrokerProcess, broker_factory, certs: Certs
) -> None:
    assert handshake_fails(tls_broker.tls_port, tls_1_1_client(certs))
    assert wait_until(lambda: "failed: unsupported protocol" in tls_broker.log)
    legacy = broker_factory("--tls-versions", "tlsv1.1,tlsv1.2")
    with pika.BlockingConnection(tls_params(legacy, tls_1_1_client(certs))) as connection:
        assert connection.channel().is_open


def test_plain_amqp_on_the_tls_port_closes_only_that_socket(
    tls_broker: BrokerProcess, certs: Certs
) -> None:
    with pika.BlockingConnection(tls_params(tls_broker, client_context(certs))) as witness:
        with socket.create_connection(("127.0.0.1", tls_broker.tls_port), timeout=WAIT) as raw:
            raw.sendall(b"AMQP\x00\x00\x09\x01")
            assert raw.recv(100) == b""
        assert wait_until(lambda: "failed: wrong version number" in tls_broker.log)
        assert witness.channel().is_open


def test_overview_lists_the_tls_listener(external_broker: BrokerProcess) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port_of(external_broker)}/api/overview"
    )
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        listeners = json.load(answer)["listeners"]
    found = {(x["protocol"], x["port"]) for x in listeners}
    assert {("amqp", external_broker.port), ("amqp/ssl", external_broker.tls_port)} <= found


# ----- certificate reload


def server_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_bad(
    tmp_path: Path, certs: Certs
) -> None:
    live = Pair(tmp_path / "live.pem", tmp_path / "live.key")
    shutil.copy(certs.server.cert, live.cert)
    shutil.copy(certs.server.key, live.key)
    tls_port = free_port()
    admin_port = free_port()
    flags = ["--tls-port", str(tls_port), "--tls-cert", str(live.cert), "--tls-key", str(live.key)]
    flags += ["--admin-port", str(admin_port), "--admin-tls-cert", str(live.cert)]
    flags += ["--admin-tls-key", str(live.key)]
    broker = BrokerProcess(free_port(), tmp_path / "data", tmp_path / "log", flags).start()
    broker.tls_port = tls_port
    try:
        first = server_certificate(tls_port)
        assert server_certificate(admin_port) == first
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        params = tls_params(broker, context)
        with pika.BlockingConnection(params) as kept:
            renewed = make_certs(tmp_path / "renewed").server
            shutil.copy(renewed.cert, live.cert)
            shutil.copy(renewed.key, live.key)
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "admin certificate reloaded" in broker.log)
            assert "AMQPS certificate reloaded" in broker.log
            second = server_certificate(tls_port)
            assert second != first and server_certificate(admin_port) == second
            assert kept.channel().is_open  # the live connection keeps its session

            live.cert.write_text("not a certificate\n")
            broker.proc.send_signal(signal.SIGHUP)
            assert wait_until(
                lambda: "AMQPS certificate not reloaded, keeping the old one" in broker.log
            )
            assert server_certificate(tls_port) == second
            assert wait_until(lambda: "admin certificate not reloaded" in broker.log)
            assert broker.log.count("certificate not reloaded") == 2  # one line each
    finally:
        broker.stop()


# ----- start-up


def failed_start(tmp_path: Path, *flags: str) -> str:
    """Start a broker that must refuse to start; its output."""
    ports = ["--port", str(free_port()), "--tls-port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "dispatchd", "--data-dir", str(tmp_path / "data"), *ports, *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "DISPATCHD_ADMIN_PORT": "0"},
    )
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


def test_bad_certificates_stop_start_up_with_one_line(tmp_path: Path, certs: Certs) -> None:
    missing = tmp_path / "missing.pem"
    assert failed_start(tmp_path, "--tls-cert", str(missing)) == (
        f"dispatchd: cannot read {missing}: No such file or directory"
    )
    mismatched = failed_start(
        tmp_path, "--tls-cert", str(certs.server.cert), "--tls-key", str(certs.client.key)
    )
    assert mismatched.startswith(f"dispatchd: cannot load certificate {certs.server.cert} and key")
    assert "key values mismatch" in mismatched
    assert failed_start(tmp_path, "--tls-cert", str(certs.server.cert), "--tls-key",
                        str(certs.server.key), "--tls-verify", "peer") == (
        "dispatchd: --tls-verify peer needs --tls-ca to verify clients with"
    )  # fmt: skip


def test_port_0_leaves_only_the_tls_listener(certs: Certs, tmp_path: Path) -> None:
    tls_port = free_port()
    flags = ["--port", "0", *tls_args(certs, tls_port)]
    proc = BrokerProcess(tls_port, tmp_path / "data", tmp_path / "log", flags).start()
    proc.tls_port = tls_port
    try:
        assert "AMQP 0-9-1 over TLS" in proc.log
        assert "listening on 127.0.0.1:" in proc.log
        assert sum("listening on" in line for line in proc.log.splitlines()) == 1
        with pika.BlockingConnection(tls_params(proc, client_context(certs))) as connection:
            assert connection.channel().is_open
    finally:
        proc.stop()


def test_ctl_status_and_port_check_know_the_tls_listener(tls_broker: BrokerProcess) -> None:
    status = ctl(tls_broker, "status")
    assert (
        f"Interface: 127.0.0.1, port: {tls_broker.tls_port}, protocol: amqp/ssl, "
        "purpose: AMQP 0-9-1 and AMQP 1.0 over TLS"
    ) in status
    checked = ctl(tls_broker, "check_port_connectivity")
    assert f"Successfully connected to ports {tls_broker.port}, {tls_broker.tls_port} " in checked


def test_ctl_listeners(tls_broker: BrokerProcess) -> None:
    lines = ctl(tls_broker, "listeners").splitlines()
    assert lines[0].startswith("Asking node dispatchd@") and lines[0].endswith(
        " to report its protocol listeners ..."
    )
    assert lines[1:] == [
        f"Interface: 127.0.0.1, port: {tls_broker.port}, protocol: amqp, "
        "purpose: AMQP 0-9-1 and AMQP 1.0",
        f"Interface: 127.0.0.1, port: {tls_broker.tls_port}, protocol: amqp/ssl, "
        "purpose: AMQP 0-9-1 and AMQP 1.0 over TLS",
    ]


def test_a_silent_tls_peer_is_cut_off_soon_after_its_connection_ends(
    tls_broker: BrokerProcess, certs: Certs
) -> None:
    """A client that stops answering misses its heartbeats; its TLS socket then goes within
    the TLS shutdown timeout (2 s), not the loop's default 30 s."""
    client = RawClient(tls_broker.tls_port)
    client.sock = client_context(certs).wrap_socket(client.sock, server_hostname="localhost")
    with client:
        assert client.handshake(heartbeat=1)["stage"] == "opened"
        port = client.sock.getsockname()[1]

        def listed() -> bool:
            return f"\t{port}\t" in ctl(
                tls_broker, "list_connections", "user", "peer_port", "state"
            )

        assert listed()
        assert wait_until(lambda: "missed heartbeats from client" in tls_broker.log, 10)
        assert wait_until(lambda: not listed(), 6)  # 2 s after the close, not 30
