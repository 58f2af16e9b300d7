"""Browser tests: a real ASGI server (uvicorn, in a subprocess) + Debian's Chromium driven by
Playwright's sync API.

Fixtures
--------
``live_server_asgi`` (function)
    The running server (:class:`LiveServer`: ``.url``, ``.url_for(path)``, ``.log()``) with a
    ``transactional_db``: whatever the test writes with the ORM is committed and visible to
    the server, and every table is emptied after the test. Use this one in tests.
``asgi_server`` (session)
    The server process itself: ``python -m uvicorn agentstore.asgi:application`` on a free
    127.0.0.1 port, HTTP and WebSockets, started once per test session.
``asgi_server_env`` (session)
    Extra environment for the server; override it in a conftest to change the run mode,
    e.g. ``{"TASK_DISPATCH": "celery"}`` together with a Celery worker.
``browser`` (module) / ``page`` (function) / ``new_page`` (function, factory)
    Chromium and a fresh context + page (1280×800, English). ``new_page(viewport=…,
    locale=…)`` opens more pages, e.g. a 375 px phone.

How the server shares the test database
---------------------------------------
* PostgreSQL (``DATABASE_URL`` set): the server gets a ``DATABASE_URL`` that names the test
  database pytest-django created (``test_<name>``). With ``REDIS_URL`` set it also shares
  Redis (cache, channel layer) with the test process.
* SQLite (embedded defaults): pytest-django's test database is normally in memory, which
  another process cannot open. When browser tests are selected, the test database is made a
  file in a temporary directory instead (for the whole session, before it is created), and
  the server runs with ``AGENTSTORE_VAR_DIR`` pointing at that directory, so its default
  database path *is* that file. WAL mode lets both processes use it.

The server runs with ``AGENTSTORE_TESTING=1`` (the test password hasher and static files
without collectstatic) and ``TASK_DISPATCH=embedded`` (agent runs on the server's own loop;
the test process's autouse fixture does the same).

Caveats
-------
* Playwright's sync API keeps an asyncio loop "running" in the test thread while it is
  alive. So the browser lives per *module* (keep browser tests in their own modules), and
  while it is open ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set so the test can still use the ORM.
  Code that needs ``async_to_sync`` (e.g. the channel layer) must run in another thread:
  use :func:`in_thread`.
* Never run ``playwright install``; Chromium comes from Debian (``/usr/bin/chromium``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT = 60.0
_STATE: dict[str, Any] = {}


# --- SQLite: a file test database when browser tests run --------------------------------------


def _uses_sqlite() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Runs after -m/-k deselection. Before any test database exists, point the SQLite test
    database at a file that the server subprocess can open too."""
    wanted = [item for item in items if item.get_closest_marker("browser")]
    if not wanted or not shutil.which(CHROMIUM) or not _uses_sqlite():
        return
    var_dir = Path(tempfile.mkdtemp(prefix="agentstore-browser-"))
    _STATE["var_dir"] = var_dir
    settings.DATABASES["default"].setdefault("TEST", {})
    # Same file name as the settings' default database under AGENTSTORE_VAR_DIR.
    settings.DATABASES["default"]["TEST"]["NAME"] = str(var_dir / "agentstore.sqlite3")


def pytest_unconfigure(config):
    var_dir = _STATE.pop("var_dir", None)
    if var_dir is not None:
        shutil.rmtree(var_dir, ignore_errors=True)


# --- the server --------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def url_for(self, path: str) -> str:
        return self.url + path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_database_env(var_dir: Path) -> dict[str, str]:
    """The environment that makes the server open the test database of this process."""
    if _uses_sqlite():
        expected = Path(str(connection.settings_dict["NAME"]))
        assert expected == var_dir / "agentstore.sqlite3", (
            f"SQLite test database {expected} is not a file the server can share; were the "
            "browser tests deselected after collection?"
        )
        return {"AGENTSTORE_VAR_DIR": str(var_dir)}
    parts = urlsplit(os.environ["DATABASE_URL"])
    test_url = urlunsplit(parts._replace(path="/" + str(connection.settings_dict["NAME"])))
    return {"DATABASE_URL": test_url, "AGENTSTORE_VAR_DIR": str(var_dir)}


@pytest.fixture(scope="session")
def asgi_server_env() -> dict[str, str]:
    """Extra environment for the server process (override to change the run mode)."""
    return {}


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the test server exited early:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url_for("/healthz"), timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"the test server did not start in {SERVER_START_TIMEOUT}s:\n{server.log()}")


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, asgi_server_env) -> Iterator[LiveServer]:
    """uvicorn serving agentstore.asgi on a free port. Depends on django_db_setup, so it is
    stopped before the test database is destroyed."""
    if "var_dir" not in _STATE:  # PostgreSQL: a directory for the server's media files
        _STATE["var_dir"] = Path(tempfile.mkdtemp(prefix="agentstore-browser-"))
    var_dir = _STATE["var_dir"]
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentstore.settings",
        "AGENTSTORE_TESTING": "1",
        "TASK_DISPATCH": "embedded",
        "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        **_server_database_env(var_dir),
        **asgi_server_env,
    }
    if _uses_sqlite():
        env.pop("DATABASE_URL", None)
    log_path = var_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
            [
                sys.executable,
                "-m",
                "uvicorn",
                "agentstore.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "on",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, env=env)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def live_server_asgi(asgi_server, transactional_db) -> LiveServer:
    """The server, for a test whose ORM writes are committed (the server can see them)."""
    assert asgi_server.process.poll() is None, asgi_server.log()
    return asgi_server


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a fresh thread (no running event loop there) and return its result; for
    code that uses ``async_to_sync`` while the browser is open."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    # Playwright's loop counts as "running" in this thread while it lives (see above).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., Any]]:
    """Factory: ``new_page(viewport={"width": 375, "height": 812}, locale="zh-CN")`` opens a
    page in its own context (own cookies); all are closed after the test."""
    contexts = []

    def factory(**context_options: Any):
        options = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US"}
        options.update(context_options)
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
