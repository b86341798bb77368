"""The wheel is the product: built offline, installed into a fresh venv, away from the source.

An editable install maps the top-level folders into ``dispatchd`` at import time and would
hide a sub-package missing from the wheel; so this builds the real wheel, installs it with
``--no-deps`` into a new venv that sees the test environment's dependencies (a ``.pth`` file)
but not the source tree, and runs that broker.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pika
import pytest

from tests.conftest import ROOT, free_port
from tests.support import wait_until

SOURCES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    "dispatchd",
    "actors",
    "wire",
    "store",
    "admin",
)
MAPPED = ("actors", "wire", "store", "admin")


def _run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with dispatchd installed from its wheel; returns the venv's directory."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SOURCES:  # a copy: building writes build/ and *.egg-info next to the sources
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(path, source / name)
    wheels = base / "wheels"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source, cwd=base)
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    python = venv / "bin" / "python"
    (wheel,) = wheels.glob("dispatchd-*.whl")
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=base)
    # The test environment's dependencies, without running its .pth files (the editable
    # install's import hook lives in one of them).
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_holds_only_the_dispatchd_package(installed: Path) -> None:
    (wheel,) = (installed.parent / "wheels").glob("dispatchd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "dispatchd",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    for folder in ("dispatchd/actors/routing/", "dispatchd/wire/", "dispatchd/store/"):
        assert any(name.startswith(folder) for name in names), folder
    assert "dispatchd/wire/amqp0-9-1.extended.xml" in names
    assert "dispatchd/admin/page.html" in names


def test_fresh_venv_imports_dispatchd_and_no_generic_names(installed: Path) -> None:
    probe = (
        "import importlib.util, dispatchd.actors.routing, dispatchd.admin.app;"
        "print(dispatchd.__file__);"
        f"print([n for n in {MAPPED!r} if importlib.util.find_spec(n)])"
    )
    out = subprocess.check_output(
        [installed / "bin" / "python", "-I", "-c", probe], cwd=installed, text=True
    )
    location, generic = out.splitlines()
    assert location.startswith(str(installed))
    assert generic == "[]"


def test_broker_from_the_wheel_publishes_gets_and_serves_its_page(
    installed: Path, tmp_path: Path
) -> None:
    port, admin_port = free_port(), free_port()
    args = [installed / "bin" / "dispatchd", "--port", str(port)]
    args += ["--admin-port", str(admin_port), "--data-dir", str(tmp_path / "data")]
    with (tmp_path / "broker.log").open("wb") as log:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (_accepts(port) and _accepts(admin_port)) or proc.poll() is not None, 15)
        assert proc.poll() is None, (tmp_path / "broker.log").read_text()
        request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=5) as page:  # the page is package data
            assert page.status == 200 and b"<html" in page.read().lower()
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        channel = connection.channel()
        channel.queue_declare("from-the-wheel")
        channel.basic_publish("", "from-the-wheel", b"hello")
        method, _, body = wait_until(lambda: _got(channel))
        assert body == b"hello" and method.message_count == 0
        connection.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0, (tmp_path / "broker.log").read_text()


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _got(channel: pika.adapters.blocking_connection.BlockingChannel) -> tuple | None:
    method, properties, body = channel.basic_get("from-the-wheel", auto_ack=True)
    return None if method is None else (method, properties, body)
