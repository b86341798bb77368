"""The admin page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium.

One logs in through the page's form and out again; administrators see users, vhosts and
permissions, others do not. The page shows a queue a pika client declares, follows its depth
as messages arrive, shows mailboxes filling under load and emptying after it, draws the actor
topology, and sorts the mailbox table. A screenshot goes to ``artifacts/admin.png``.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator

import pika
import pytest

from tests.admin_support import (
    AdminClient,
    admin_broker,  # noqa: F401 - fixture
    eventually,
)
from tests.conftest import ROOT, BrokerProcess

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium is not installed (apt-get install chromium chromium-driver)",
)
ARTIFACTS = ROOT / "artifacts"
WAIT = 10.0


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1440,1700",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def page_state(driver: webdriver.Chrome, script: str, *args: object) -> object:
    return driver.execute_script(script, *args)


QUEUE_CELLS = """
const row = document.querySelector(`#queues tr[data-queue="${arguments[0]}"]`);
if (!row) return null;
const cell = (cls) => row.querySelector(`td.${cls}`).textContent.trim();
return {ready: cell("ready"), depth: cell("mailbox-depth"), handled: cell("mailbox-handled"),
        publish: cell("publish")};
"""
MAILBOX_DEPTHS = """
return Array.from(document.querySelectorAll('#mailboxes tbody tr')).map((tr) => ({
  kind: tr.dataset.kind, name: tr.dataset.name,
  depth: Number(tr.querySelector('td.mailbox-depth').textContent.replace(/,/g, '')),
  age: tr.querySelector('td.oldest-age').textContent.trim()}));
"""
SORT_BY = """
const header = () => document.querySelector(`#mailboxes th[data-key="${arguments[0]}"]`);
header().click();
const cells = document.querySelectorAll(`#mailboxes tbody td.${arguments[1]}`);
return {order: header().getAttribute("aria-sort"),
        values: Array.from(cells).map((td) => td.textContent.replace(/,/g, ""))
          .map((t) => t === "0" ? 0 : parseFloat(t) * (t.endsWith(" s") ? 1e6 :
                t.endsWith(" ms") ? 1e3 : 1))};
"""
REFRESHES = "return Number(document.body.dataset.refreshes || 0)"
VIEW = "return document.body.dataset.view || ''"
ROWS = """
return Array.from(document.querySelectorAll(arguments[0])).map((tr) => tr.dataset[arguments[1]]);
"""


def log_in(driver: webdriver.Chrome, port: int, user: str, password: str, query: str = "") -> None:
    """Open the page (it shows the login form) and log in through the form."""
    driver.get(f"http://127.0.0.1:{port}/{query}")
    eventually(lambda: page_state(driver, VIEW) == "login", "the login form", WAIT)
    assert not driver.find_element("id", "queues").is_displayed()
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("css selector", "#login button[type=submit]").click()


def wait_refreshes(driver: webdriver.Chrome, count: int = 2) -> None:
    """Wait for ``count`` more refreshes of the page (so it shows the broker as it is now)."""
    start = page_state(driver, REFRESHES)
    eventually(lambda: page_state(driver, REFRESHES) >= start + count, "the page to refresh", WAIT)


def load(broker: BrokerProcess, queue: str, stop: threading.Event) -> None:
    """Publish as fast as pika can to a consumed queue until ``stop``."""
    with pika.BlockingConnection(broker.params()) as connection:
        channel = connection.channel()
        while not stop.is_set():
            for _ in range(200):
                channel.basic_publish("", queue, b"x" * 64)
            connection.process_data_events(0)


def test_page_follows_the_broker(
    admin_broker: tuple[BrokerProcess, AdminClient],  # noqa: F811
    browser: webdriver.Chrome,
) -> None:
    broker, api = admin_broker
    log_in(browser, api.port, "guest", "guest", "?refresh=250")
    eventually(lambda: page_state(browser, REFRESHES) >= 1, "the first refresh", WAIT)
    assert browser.find_element("id", "error").is_displayed() is False
    assert "No queues yet" in browser.find_element("id", "queues").text
    assert "No client connections" in browser.find_element("id", "connections").text
    listening = browser.find_element("id", "listeners").text
    assert (
        f"amqp 127.0.0.1:{broker.port}" in listening and f"http 127.0.0.1:{api.port}" in listening
    )

    # A queue declared by a client appears, and its depth follows publishes.
    queue = f"browser-{uuid.uuid4().hex[:8]}"
    connection = broker.connect()
    channel = connection.channel()
    channel.queue_declare(queue)
    row = eventually(lambda: page_state(browser, QUEUE_CELLS, f"//{queue}"), "the queue row", WAIT)
    assert row["ready"] == "0"
    for i in range(25):
        channel.basic_publish("", queue, f"m{i}".encode())
    eventually(
        lambda: page_state(browser, QUEUE_CELLS, f"//{queue}")["ready"] == "25", "ready 25", WAIT
    )
    assert "Pika Python Client Library" in browser.find_element("id", "connections").text

    # Under load, mailboxes fill (the page shows messages waiting), and empty again after.
    busy = f"busy-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(busy)
    channel.basic_consume(busy, lambda *_: None, auto_ack=True)
    before = eventually(lambda: page_state(browser, QUEUE_CELLS, f"//{busy}"), "busy row", WAIT)
    stop = threading.Event()
    publishers = [threading.Thread(target=load, args=(broker, busy, stop)) for _ in range(3)]
    for thread in publishers:
        thread.start()
    try:
        publish = "return document.querySelector('[data-card=\"Publish\"] .value').textContent"
        eventually(lambda: page_state(browser, publish) != "0/s", "a publish rate", WAIT)
        eventually(
            lambda: page_state(browser, QUEUE_CELLS, f"//{busy}")["publish"] != "0/s",
            "the queue's publish rate",
            WAIT,
        )
        waiting = eventually(
            lambda: [m for m in page_state(browser, MAILBOX_DEPTHS) if m["depth"] > 0],
            "a mailbox with messages waiting",
            WAIT * 2,
        )
        assert all(m["age"] != "0" for m in waiting)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "admin.png"))
    finally:
        stop.set()
        for thread in publishers:
            thread.join()
    connection.process_data_events(0.5)

    def drained() -> bool:
        connection.process_data_events(0)
        depths = page_state(browser, MAILBOX_DEPTHS)
        return bool(depths) and all(m["depth"] == 0 for m in depths)

    eventually(drained, "every mailbox to empty", WAIT)
    after = page_state(browser, QUEUE_CELLS, f"//{busy}")
    assert int(after["handled"].replace(",", "")) > int(before["handled"].replace(",", ""))

    # The topology drawing has the queue's actor, wired to its consumer.
    queue_urn = next(a["urn"] for a in api.get("/api/actors") if a["name"] == busy)
    wait_refreshes(browser)
    assert browser.find_elements("css selector", f'#topology g.node[data-urn="{queue_urn}"]')
    assert len(browser.find_elements("css selector", "#topology path.edge")) >= 4
    titles = [t.text for t in browser.find_elements("css selector", "#topology .col-title")]
    assert {"CONNECTIONS", "CHANNELS", "QUEUES", "CONSUMERS"} <= {t.upper() for t in titles}

    # The mailbox table sorts by depth and by age, both ways (a click re-sorts at once).
    for column, cell in (("oldest_age", "oldest-age"), ("mailbox_depth", "mailbox-depth")):
        first = page_state(browser, SORT_BY, column, cell)
        second = page_state(browser, SORT_BY, column, cell)
        assert (first["order"], second["order"]) == ("descending", "ascending")
        assert second["values"] == sorted(second["values"])
        assert first["values"] == sorted(first["values"], reverse=True)
    connection.close()
    assert (ARTIFACTS / "admin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_login_logout_and_what_administrators_see(
    admin_broker: tuple[BrokerProcess, AdminClient],  # noqa: F811
    browser: webdriver.Chrome,
) -> None:
    broker, api = admin_broker
    log_in(browser, api.port, "guest", "wrong")
    error = browser.find_element("id", "login-error")
    eventually(lambda: error.is_displayed() and error.text == "Login failed", "the refusal", WAIT)
    assert page_state(browser, VIEW) == "login"

    browser.find_element("id", "password").clear()
    browser.find_element("id", "password").send_keys("guest")
    browser.find_element("css selector", "#login button[type=submit]").click()
    eventually(lambda: page_state(browser, REFRESHES) >= 1, "the first refresh", WAIT)
    assert browser.find_element("id", "whoami").text == "guest"
    cookie = browser.get_cookie("dispatchd_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page_state(browser, "return document.cookie") == ""  # the page's JS cannot read it

    queue = f"login-{uuid.uuid4().hex[:8]}"
    connection = broker.connect()
    connection.channel().queue_declare(queue)
    eventually(lambda: page_state(browser, QUEUE_CELLS, f"//{queue}"), "the queue row", WAIT)
    connection.close()

    # An administrator sees users, vhosts and permissions.
    for section in ("users", "vhosts", "permissions"):
        assert browser.find_element("id", section).is_displayed()
    assert "guest" in page_state(browser, ROWS, "#users tbody tr", "user")
    assert "/" in page_state(browser, ROWS, "#vhosts tbody tr", "vhost")
    assert "guest@/" in page_state(browser, ROWS, "#permissions tbody tr", "permission")
    users = browser.find_element("id", "users").text
    assert "administrator" in users
    default = next(v for v in api.get("/api/vhosts") if v["name"] == "/")
    cells = "return Array.from(document.querySelectorAll(arguments[0])).map((td) => td.textContent)"
    shown = page_state(browser, cells, '#vhosts tr[data-vhost="/"] td')
    assert shown == ["/", default["description"], "", default["default_queue_type"]]

    browser.find_element("id", "logout").click()
    eventually(lambda: page_state(browser, VIEW) == "login", "the login form", WAIT)
    assert browser.get_cookie("dispatchd_session") is None
    assert not browser.find_element("id", "queues").is_displayed()
    browser.refresh()  # still logged out after a reload
    eventually(lambda: page_state(browser, VIEW) == "login", "the login form again", WAIT)

    # A management user (no administrator tag) does not see those sections.
    name = f"mgmt-{uuid.uuid4().hex[:8]}"
    made = api.request("PUT", f"/api/users/{name}", {"password": "pw", "tags": "management"})
    assert made.status == 201
    try:
        log_in(browser, api.port, name, "pw")
        eventually(lambda: page_state(browser, VIEW) == "app", "the page", WAIT)
        eventually(lambda: browser.find_element("id", "whoami").text == name, "the name", WAIT)
        for section in ("users", "vhosts", "permissions"):
            assert not browser.find_element("id", section).is_displayed()
        nav = browser.find_element("css selector", "header nav").text
        assert "Queues" in nav and "Users" not in nav
    finally:
        api.request("DELETE", f"/api/users/{name}")
