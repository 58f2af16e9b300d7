"""Chat streaming benchmark (issue 5): WebSocket chat and the OpenAI-compatible endpoint,
end to end in production mode, against the fake model called directly.

Everything runs as it would in production, each piece its own process: the ASGI server
(uvicorn or daphne) serving ``agentstore.asgi``, Celery workers (Redis broker), PostgreSQL,
channels-redis, and fake OpenAI-compatible servers (``tests/fakes/openai_server.py``)
standing in for the model. The script creates its own database (``--db``, dropped at the
end) and flushes its own Redis database (``--redis-db``) before and after.

Parts (``--parts a,r,b,c,d``):

(a) **WebSocket chat**: C concurrent chats (1, 50, 200), each sending messages one after
    another over ``/ws/chats/<id>/``; time from ``send_message`` to the first
    ``TEXT_MESSAGE_CONTENT`` frame (TTFT) and to the terminal event, against the same
    number of concurrent streams read straight from the fake model. Added TTFT, added
    per-token time, and where the time goes (web process → run row → worker claim →
    first model token → frame on the client), from the run rows' timestamps.
(r) **Relay only** (the web tier alone): synthetic runs published into the chats' groups
    by a separate process through channels-redis at the runtime's pace (a batch every
    40 ms); latency from publish to frame on the client at C concurrent streams. This is
    the part the ASGI server and the consumer decide, so it is what picks the server.
(b) **Idle sockets**: 1,000 and 5,000 connected clients; the web process's RSS growth per
    connection and its CPU while they idle.
(c) **Bytes per token**: WebSocket payload per streamed token for a short (20 tokens) and a
    long (1,000 tokens) answer; must not grow with the answer.
(d) **OpenAI-compatible streaming** (``POST /v1/chat/completions``, ``stream: true``) for an
    agent whose model is a ``custom`` provider on the fake server pacing 200 tokens 10 ms
    apart: added TTFT and total time at 1, 10 and 50 concurrent requests; the most tokens
    per second relayed with no pacing; the web process's peak RSS.

Usage (not part of the test suite)::

    .venv/bin/python bench/chat_ws.py                      # all parts, uvicorn
    .venv/bin/python bench/chat_ws.py --server daphne --parts r,b,d
    .venv/bin/python bench/chat_ws.py --quick              # fewer rounds, smaller levels

Options: ``--pg`` (server URL without database), ``--db``, ``--redis-db``, ``--workers``,
``--pool``, ``--threads``, ``--rounds``, ``--web-workers`` (uvicorn worker processes, 1 by
default; ``make serve`` runs ``WEB_CONCURRENCY=2``: CPU figures are then the web tier's
total and the peak RSS is the largest worker's). The file-descriptor limit is raised to its hard
limit for this process and the servers it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE = 4096
TICKS = os.sysconf("SC_CLK_TCK")
TERMINAL = {"RUN_FINISHED", "RUN_ERROR"}


# --- small helpers ---------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (uvicorn/daphne run one process)."""
    return sum(rss_of(p) for p in [pid, *children(pid)])


def rss_of(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def web_rss(pid: int) -> int:
    """The web process's RSS; with ``--web-workers`` > 1, the largest worker process's
    (uvicorn's supervisor itself serves nothing)."""
    workers = children(pid)
    return max(rss_of(p) for p in workers) if len(workers) > 1 else rss_bytes(pid)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(FileNotFoundError):
        return [int(x) for x in path.read_text().split()]
    return []


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (the web tier's, with ``--web-workers``)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def spawn(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log = log_dir / f"{name}.log"
    handle = log.open("w")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        command,
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() reaches its children
    )
    return Proc(name, process, log)


def wait_http(url: str, proc: Proc, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer {url}:\n{proc.text()[-3000:]}")


# --- the environment ---------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    web: Proc | None = None
    web_url: str = ""
    fakes: dict[str, str] = field(default_factory=dict)  # name → base URL (…/v1)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return "ws" + self.web_url.removeprefix("http")


FAKES = {
    # name: (tokens, delay between tokens in seconds)
    "ws": (100, 0.04),  # (a): 25 tokens/s, a typical hosted model; 4-second answers
    "paced": (200, 0.01),  # (d): 200 tokens 10 ms apart
    "burst": (200, 0.0),  # (d): no pacing, the relay's ceiling
    "short": (20, 0.01),  # (c)
    "long": (1000, 0.01),  # (c)
}


def base_env(args: argparse.Namespace) -> dict[str, str]:
    database = f"{args.pg.rstrip('/')}/{args.db}"
    redis = f"redis://127.0.0.1:6379/{args.redis_db}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentstore.settings",
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "TASK_DISPATCH": "celery",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0",
        "OUTBOUND_ALLOWLIST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        # Limits meant for people, not for a load generator.
        "MAX_CONCURRENT_RUNS_PER_USER": "100000",
        "MAX_SESSIONS_PER_USER": "100000",
        "CHAT_MESSAGES_PER_MINUTE": "1000000",
        "WS_MAX_MESSAGE_BYTES": "65536",
    }


def create_database(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{args.pg.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db)))


def drop_database(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{args.pg.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db))
        )


def flush_redis(args: argparse.Namespace) -> None:
    import redis

    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{args.redis_db}")
    client.flushdb()
    client.close()


SETUP_CODE = r"""
import json, os, sys
import django
django.setup()
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from accounts.models import Role, User
from accounts.services import api_key_create
from agents.config import default_config
from agents.models import Agent, AgentVersion, Install
from chats.models import Chat
from integrations.models import LLMModel, ProviderType

spec = json.loads(sys.argv[1])
developer = User.objects.create(username="bench-dev", email="dev@bench.test", role=Role.DEVELOPER)
agents = {}
for name, base_url in spec["fakes"].items():
    llm = LLMModel.objects.create(
        display_name=f"Fake {name}", provider_type=ProviderType.CUSTOM, base_url=base_url,
        model_name="fake-model", is_active=True,
    )
    agent = Agent.objects.create(
        name=f"Bench {name}", slug=f"bench-{name}", developer=developer,
        status=Agent.Status.PUBLISHED, published_at=timezone.now(),
    )
    config = default_config("dialog")
    config["model"]["llm_model_id"] = str(llm.pk)
    config["system_prompt"] = "Count."
    version = AgentVersion.objects.create(
        agent=agent, version="1.0.0", config=config, status=AgentVersion.Status.APPROVED,
        is_current=True, check_status=AgentVersion.CheckStatus.PASSED, reviewed_at=timezone.now(),
    )
    agent.current_version = version
    agent.save(update_fields=["current_version"])
    agents[name] = (agent, version)
users = []
for index in range(spec["users"]):
    user = User.objects.create(
        username=f"bench-{index}", email=f"bench-{index}@bench.test", role=Role.USER
    )
    for agent, _version in agents.values():
        Install.objects.create(user=user, agent=agent, seen_version=agent.current_version)
    key = api_key_create(user, name="bench")[1]
    chats = {}
    for name, count in spec["chats"].items():
        agent, version = agents[name]
        chats[name] = [
            str(Chat.objects.create(user=user, agent=agent, agent_version=version).pk)
            for _ in range(count)
        ]
    users.append({"id": str(user.pk), "key": key, "chats": chats})
print("SETUP " + json.dumps({"users": users}))
"""


def setup(bench: Bench) -> None:
    args = bench.args
    create_database(args)
    flush_redis(args)
    bench.env = base_env(args)
    for name, (tokens, delay) in FAKES.items():
        port = free_port()
        proc = spawn(
            f"fake-{name}",
            [
                sys.executable,
                "-m",
                "tests.fakes.openai_server",
                "--port",
                str(port),
                "--tokens",
                str(tokens),
                "--delay",
                str(delay),
            ],
            bench.env,
            bench.log_dir,
        )
        bench.procs.append(proc)
        bench.fakes[name] = f"http://127.0.0.1:{port}/v1"
        wait_http(f"{bench.fakes[name]}/models", proc)
    per_user = max(1, args.chats_per_user)
    users = -(-max(args.max_ws, args.idle_max // args.idle_per_chat + 1) // per_user)
    spec = {
        "fakes": bench.fakes,
        "users": users,
        "chats": {"ws": per_user, "short": 1, "long": 1},
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SETUP_CODE, json.dumps(spec)],
        cwd=ROOT,
        env=bench.env,
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("SETUP ")), None)
    if line is None:
        raise RuntimeError(f"set-up failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    bench.data = json.loads(line[6:])
    start_workers(bench)
    start_web(bench, args.server)


def start_workers(bench: Bench) -> None:
    args = bench.args
    for index in range(args.workers):
        bench.procs.append(
            spawn(
                f"worker-{index}",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "agentstore",
                    "worker",
                    f"--pool={args.pool}",
                    f"--concurrency={args.threads}",
                    "--loglevel=INFO",
                    "-n",
                    f"bench-{index}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--prefetch-multiplier=1",
                ],
                {**bench.env, "DB_POOL_SIZE": str(args.db_pool)},
                bench.log_dir,
            )
        )
    deadline = time.monotonic() + 90
    for proc in bench.procs:
        if not proc.name.startswith("worker-"):
            continue
        while " ready." not in proc.text():
            if proc.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready:\n{proc.text()[-3000:]}")
            time.sleep(0.2)


def start_web(bench: Bench, server: str) -> None:
    if bench.web is not None:
        bench.web.stop()
        bench.procs.remove(bench.web)
    port = free_port()
    if server == "daphne":
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--verbosity",
            "0",
            "agentstore.asgi:application",
        ]
    else:
        command = [
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
            "--backlog",
            "8192",
            "--ws-ping-interval",
            str(bench.args.ws_ping_interval),
        ]
        if bench.args.web_workers > 1:
            command += ["--workers", str(bench.args.web_workers)]
    bench.web = spawn(f"web-{server}", command, bench.env, bench.log_dir)
    bench.procs.append(bench.web)
    bench.web_url = f"http://127.0.0.1:{port}"
    wait_http(f"{bench.web_url}/healthz", bench.web)


def teardown(bench: Bench) -> None:
    for proc in reversed(bench.procs):
        proc.stop()
    if not bench.args.keep:
        with contextlib.suppress(Exception):
            drop_database(bench.args)
        with contextlib.suppress(Exception):
            flush_redis(bench.args)


# --- run timestamps (where the time goes) ------------------------------------------------------


def run_stamps(
    bench: Bench, run_ids: list[str]
) -> dict[str, tuple[float, float, float | None, float | None]]:
    """run id → (created, started, first token, first text event stored) as UNIX times,
    from the run rows and their events."""
    import psycopg

    if not run_ids:
        return {}
    with psycopg.connect(bench.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT r.id::text, r.created_at, r.started_at, r.first_token_at, "
            "(SELECT min(e.created_at) FROM chats_runevent e WHERE e.run_id = r.id "
            "AND e.type = 'TEXT_MESSAGE_CONTENT') FROM chats_run r "
            "WHERE r.id = ANY(%s::uuid[])",
            (run_ids,),
        ).fetchall()
    return {
        row[0]: (
            row[1].timestamp(),
            row[2].timestamp() if row[2] else float("nan"),
            row[3].timestamp() if row[3] else None,
            row[4].timestamp() if row[4] else None,
        )
        for row in rows
    }


# --- the direct floor ----------------------------------------------------------------------------


@dataclass
class Sample:
    ttft: float
    total: float
    tokens: int = 0
    sent: float = 0.0  # UNIX time the request/message left the client
    first_at: float = 0.0  # UNIX time of the first token on the client
    run_id: str = ""
    content_bytes: int = 0  # (c) payload bytes of TEXT_MESSAGE_CONTENT frames
    all_bytes: int = 0  # (c) payload bytes of every frame of the run
    frames: int = 0


async def direct_stream(client: Any, base_url: str) -> Sample:
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "Go"}]}
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter()
    end = time.perf_counter()
    return Sample(ttft=(first or end) - start, total=end - start, tokens=tokens)


async def measure_direct(base_url: str, concurrency: int, rounds: int, span: float) -> list[Sample]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency)
    samples: list[Sample] = []
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_client() -> None:
            await asyncio.sleep(random.uniform(0, span))
            for _ in range(rounds):
                samples.append(await direct_stream(client, base_url))

        await asyncio.gather(*[one_client() for _ in range(concurrency)])
    return samples


# --- (a) WebSocket chats --------------------------------------------------------------------------


def ws_headers(key: str, bench: Bench) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Origin": bench.web_url}


async def ws_connect(bench: Bench, chat_id: str, key: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(
        f"{bench.ws_url}/ws/chats/{chat_id}/",
        additional_headers=ws_headers(key, bench),
        open_timeout=60,
        ping_interval=None,
        max_size=2**22,
        compression=None,
    )
    hello = json.loads(await ws.recv())
    if hello.get("type") != "CONNECTED":
        raise RuntimeError(f"unexpected first frame: {hello}")
    return ws


async def ws_turn(ws: Any, text: str) -> Sample:
    """Send a message and read the run to its terminal event."""
    sent = time.time()
    start = time.perf_counter()
    await ws.send(json.dumps({"type": "send_message", "content": text}))
    first = None
    first_wall = 0.0
    tokens = 0
    content_bytes = all_bytes = frames = 0
    run_id = ""
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout=300)
        size = len(raw.encode()) if isinstance(raw, str) else len(raw)
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "ERROR":
            raise RuntimeError(f"server error: {frame}")
        if kind == "MESSAGE_ACCEPTED":
            run_id = frame["run_id"]
            continue
        if frame.get("run_id") != run_id:
            continue
        all_bytes += size
        frames += 1
        if kind == "TEXT_MESSAGE_CONTENT":
            content_bytes += size
            tokens += frame["delta"].count(" ")
            if first is None:
                first = time.perf_counter()
                first_wall = time.time()
        elif kind in TERMINAL:
            end = time.perf_counter()
            if kind == "RUN_ERROR":
                raise RuntimeError(f"run failed: {frame}")
            return Sample(
                ttft=(first or end) - start,
                total=end - start,
                tokens=tokens,
                sent=sent,
                first_at=first_wall,
                run_id=run_id,
                content_bytes=content_bytes,
                all_bytes=all_bytes,
                frames=frames,
            )


def ws_chats(bench: Bench, name: str, count: int) -> list[tuple[str, str]]:
    """``count`` (chat id, key) pairs of the ``name`` agent, spread over the users."""
    pairs = [(chat, user["key"]) for user in bench.data["users"] for chat in user["chats"][name]]
    if count > len(pairs):
        raise RuntimeError(f"only {len(pairs)} {name} chats set up, {count} wanted")
    return pairs[:count]


async def measure_ws(bench: Bench, concurrency: int, rounds: int, span: float) -> list[Sample]:
    pairs = ws_chats(bench, "ws", concurrency)
    sockets = []
    for index in range(0, len(pairs), 50):
        sockets += await asyncio.gather(
            *[ws_connect(bench, c, k) for c, k in pairs[index : index + 50]]
        )
    samples: list[Sample] = []

    async def one_chat(ws: Any) -> None:
        await asyncio.sleep(random.uniform(0, span))
        for _ in range(rounds):
            samples.append(await ws_turn(ws, "Count for me"))

    try:
        await asyncio.gather(*[one_chat(ws) for ws in sockets])
    finally:
        await asyncio.gather(*[ws.close() for ws in sockets], return_exceptions=True)
    return samples


def breakdown(bench: Bench, samples: list[Sample], q: float = 0.5) -> dict[str, float]:
    """A percentile (``q``) of each leg, in seconds, from the client clock, the run rows and
    the stored events."""
    stamps = run_stamps(bench, [s.run_id for s in samples if s.run_id])
    legs: dict[str, list[float]] = {
        "accept": [],
        "queue": [],
        "model": [],
        "store": [],
        "relay": [],
    }
    for s in samples:
        created, started, token, stored = stamps.get(s.run_id, (float("nan"),) * 4)
        legs["accept"].append(created - s.sent)  # client → run row stored (web process)
        legs["queue"].append(started - created)  # → claimed by a worker (Celery hop)
        if token is not None:
            legs["model"].append(token - started)  # → first token from the model
            if stored is not None:
                legs["store"].append(stored - token)  # → its event stored (worker)
                legs["relay"].append(s.first_at - stored)  # → frame on the client
    return {name: pct(values, q) for name, values in legs.items()}


def print_level(
    label: str, concurrency: int, direct: list[Sample], through: list[Sample], tokens: int
) -> dict:
    d_ttft = [s.ttft for s in direct]
    t_ttft = [s.ttft for s in through]
    d_total = [s.total for s in direct]
    t_total = [s.total for s in through]
    row = {
        "concurrency": concurrency,
        "direct_ttft": (pct(d_ttft, 0.5), pct(d_ttft, 0.95)),
        "ttft": (pct(t_ttft, 0.5), pct(t_ttft, 0.95)),
        "added_ttft": (pct(t_ttft, 0.5) - pct(d_ttft, 0.5), pct(t_ttft, 0.95) - pct(d_ttft, 0.95)),
        "direct_total": pct(d_total, 0.5),
        "total": pct(t_total, 0.5),
        "per_token": (statistics.mean(t_total) - statistics.mean(d_total)) / tokens,
        "samples": len(through),
    }
    print(
        f"  {label} {concurrency:4d} conc: direct TTFT p50/p95 {ms(row['direct_ttft'][0])}/"
        f"{ms(row['direct_ttft'][1])} ms | TTFT {ms(row['ttft'][0])}/{ms(row['ttft'][1])} ms"
        f" | added {ms(row['added_ttft'][0])}/{ms(row['added_ttft'][1])} ms | total p50 direct "
        f"{ms(row['direct_total'])} → {ms(row['total'])} ms | added per token "
        f"{row['per_token'] * 1000:.2f} ms | n={row['samples']}",
        flush=True,
    )
    return row


def print_legs(bench: Bench, samples: list[Sample], what: str) -> dict[str, float]:
    """Prints the p50 and p95 of each leg; returns the p50s."""
    legs = breakdown(bench, samples)
    for label, values in (("p50", legs), ("p95", breakdown(bench, samples, 0.95))):
        print(
            f"         {label} legs: client→run stored {{accept}} ms, →worker claim {{queue}} ms, "
            f"→first model token {{model}} ms, →its event stored {{store}} ms, "
            f"→{what} on client {{relay}} ms".format(**{k: ms(v) for k, v in values.items()}),
            flush=True,
        )
    return legs


async def part_a(bench: Bench) -> list[dict]:
    print("(a) WebSocket chats vs the fake model directly", flush=True)
    tokens, delay = FAKES["ws"]
    span = tokens * delay
    rows = []
    await measure_ws(bench, min(20, bench.args.max_ws), 1, 0.0)  # warm-up: threads, pools
    for concurrency in bench.args.ws_levels:
        direct = await measure_direct(bench.fakes["ws"], concurrency, bench.args.rounds, span)
        through = await measure_ws(bench, concurrency, bench.args.rounds, span)
        row = print_level("ws", concurrency, direct, through, tokens)
        row["legs"] = print_legs(bench, through, "frame")
        rows.append(row)
    return rows


# --- (r) the relay alone --------------------------------------------------------------------------

PUBLISHER_CODE = r"""
import asyncio, json, sys, time, uuid

async def main(spec):
    host = {"address": spec["redis"], "socket_timeout": 30, "max_connections": 5000}
    if spec["layer"] == "pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer as Layer
    else:
        from channels_redis.core import RedisChannelLayer as Layer
    layer = Layer(hosts=[host], prefix="asgi", capacity=100000, expiry=60)
    batches, interval = spec["batches"], spec["interval"]

    async def one(chat_id, delay):
        await asyncio.sleep(delay)
        run_id = str(uuid.uuid4())
        group = "chat." + chat_id
        async def send(seq, payload):
            payload.update(seq=seq, runId=run_id, sentAt=time.time())
            await layer.group_send(group, {"type": "event.deliver", "event": payload})
        await send(1, {"type": "RUN_STARTED", "threadId": chat_id, "runId": run_id})
        for n in range(batches):
            await send(n + 2, {"type": "TEXT_MESSAGE_CONTENT", "messageId": run_id,
                               "delta": "t%d t%d t%d t%d " % (n, n, n, n)})
            await asyncio.sleep(interval)
        await send(batches + 2, {"type": "RUN_FINISHED", "threadId": chat_id, "runId": run_id})

    await asyncio.gather(*[one(c, i * interval / max(1, len(spec["chats"])))
                           for i, c in enumerate(spec["chats"])])
    if spec["layer"] == "pubsub":
        await layer.flush()  # closes its connections
    else:
        await layer.close_pools()  # (flush() would delete the messages not yet delivered)

asyncio.run(main(json.loads(sys.argv[1])))
"""


async def measure_relay(
    bench: Bench, concurrency: int, batches: int, interval: float
) -> list[float]:
    pairs = ws_chats(bench, "ws", concurrency)
    sockets = []
    for index in range(0, len(pairs), 50):
        sockets += await asyncio.gather(
            *[ws_connect(bench, c, k) for c, k in pairs[index : index + 50]]
        )
    latencies: list[float] = []
    last: dict[int, Any] = {}

    async def read(ws: Any) -> None:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            last[id(ws)] = (frame.get("seq"), frame.get("type"))
            if "sentAt" in frame:
                latencies.append(time.time() - frame["sentAt"])
            if frame.get("type") in TERMINAL:
                return

    readers = [asyncio.ensure_future(read(ws)) for ws in sockets]
    spec = {
        "layer": bench.env.get("CHANNEL_LAYER", "pubsub"),  # the settings default
        "redis": bench.env["REDIS_URL"],
        "chats": [chat for chat, _ in pairs],
        "batches": batches,
        "interval": interval,
    }
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER_CODE, json.dumps(spec), cwd=str(ROOT), env=bench.env
    )
    try:
        await asyncio.gather(*readers)
    except TimeoutError:
        done = sum(1 for r in readers if r.done() and not r.exception())
        print(f"  !! relay: {done}/{len(readers)} streams ended; {len(latencies)} events")
        stuck = [last.get(id(ws)) for ws, r in zip(sockets, readers, strict=True) if not r.done()]
        print(f"  !! last frames of unfinished streams: {stuck[:10]}")
        raise
    finally:
        await publisher.wait()
        await asyncio.gather(*[ws.close() for ws in sockets], return_exceptions=True)
    return latencies


async def part_r(bench: Bench) -> list[dict]:
    print("(r) relay only: publish → WebSocket frame (the web tier alone)", flush=True)
    rows = []
    for concurrency in bench.args.relay_levels:
        cpu0 = cpu_seconds(bench.web.process.pid)
        wall0 = time.perf_counter()
        latencies = await measure_relay(bench, concurrency, batches=50, interval=0.04)
        cpu = (cpu_seconds(bench.web.process.pid) - cpu0) / (time.perf_counter() - wall0)
        row = {
            "concurrency": concurrency,
            "p50": pct(latencies, 0.5),
            "p95": pct(latencies, 0.95),
            "p99": pct(latencies, 0.99),
            "events_per_s": concurrency * 25,
            "web_cpu": cpu,
            "n": len(latencies),
        }
        print(
            f"  relay {concurrency:4d} streams ({row['events_per_s']} events/s): "
            f"latency p50/p95/p99 "
            f"{ms(row['p50'])}/{ms(row['p95'])}/{ms(row['p99'])} ms, web CPU {cpu * 100:.0f}% "
            f"of a core, n={row['n']}",
            flush=True,
        )
        rows.append(row)
    return rows


# --- (b) idle sockets -----------------------------------------------------------------------------


async def part_b(bench: Bench) -> list[dict]:
    print("(b) idle WebSocket connections", flush=True)
    per_chat = bench.args.idle_per_chat
    pairs = [(c, u["key"]) for u in bench.data["users"] for c in u["chats"]["ws"]]
    rows = []
    sockets: list[Any] = []
    start_web(bench, bench.args.server)  # a fresh process: nothing left from other parts
    pid = bench.web.process.pid
    warm = await asyncio.gather(*[ws_connect(bench, *pairs[i]) for i in range(20)])
    await asyncio.gather(*[ws.close() for ws in warm])  # code paths and pools warmed up
    await asyncio.sleep(3)
    base = rss_bytes(pid)
    print(f"  fresh web process: {base / 2**20:.0f} MiB after a warm-up", flush=True)
    for target in bench.args.idle_levels:
        while len(sockets) < target:
            batch = min(100, target - len(sockets))
            start = len(sockets)
            sockets += await asyncio.gather(
                *[ws_connect(bench, *pairs[(start + i) // per_chat]) for i in range(batch)]
            )
        await asyncio.sleep(5)  # let allocations settle
        rss = rss_bytes(pid)
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(bench.args.idle_seconds)
        idle_cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - wall0)
        row = {
            "connections": len(sockets),
            "rss": rss,
            "per_connection": (rss - base) / len(sockets),
            "idle_cpu": idle_cpu,
        }
        print(
            f"  {len(sockets):5d} idle sockets: web RSS {rss / 2**20:.0f} MiB "
            f"(+{(rss - base) / 2**20:.0f} MiB, {row['per_connection'] / 1024:.1f} KiB each), "
            f"idle CPU {idle_cpu * 100:.1f}% of a core over {bench.args.idle_seconds:.0f} s",
            flush=True,
        )
        rows.append(row)
    for index in range(0, len(sockets), 500):
        await asyncio.gather(
            *[ws.close() for ws in sockets[index : index + 500]], return_exceptions=True
        )
    return rows


# --- (c) bytes per token --------------------------------------------------------------------------


async def part_c(bench: Bench) -> list[dict]:
    print("(c) WebSocket bytes per streamed token", flush=True)
    rows = []
    for name in ("short", "long"):
        tokens, _delay = FAKES[name]
        chat, key = ws_chats(bench, name, 1)[0]
        ws = await ws_connect(bench, chat, key)
        try:
            samples = [await ws_turn(ws, "Count") for _ in range(3)]
        finally:
            await ws.close()
        sample = samples[-1]
        text = sum(len(f"t{i} ") for i in range(tokens))
        row = {
            "answer": name,
            "tokens": sample.tokens,
            "frames": sample.frames,
            "all_per_token": sample.all_bytes / tokens,
            "content_per_token": sample.content_bytes / tokens,
            "overhead_per_token": (sample.content_bytes - text) / tokens,
        }
        print(
            f"  {name:5s} answer ({tokens} tokens, {sample.frames} frames): "
            f"{row['all_per_token']:.1f} B/token all frames, {row['content_per_token']:.1f} "
            f"B/token text frames, of which framing {row['overhead_per_token']:.1f} B/token",
            flush=True,
        )
        rows.append(row)
    return rows


# --- (d) the OpenAI-compatible endpoint -----------------------------------------------------------


async def openai_stream(client: Any, bench: Bench, key: str, model: str) -> Sample:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Go"}]}
    headers = {"Authorization": f"Bearer {key}"}
    sent = time.time()
    start = time.perf_counter()
    first = None
    first_wall = 0.0
    tokens = 0
    run_id = ""
    async with client.stream(
        "POST", f"{bench.web_url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]}")
        run_id = response.headers.get("X-AgentStore-Run-Id", "")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"stream error: {chunk['error']}")
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    tokens += content.count(" ")
                    if first is None:
                        first = time.perf_counter()
                        first_wall = time.time()
    end = time.perf_counter()
    return Sample(
        ttft=(first or end) - start,
        total=end - start,
        tokens=tokens,
        sent=sent,
        first_at=first_wall,
        run_id=run_id,
    )


async def measure_openai(
    bench: Bench, model: str, concurrency: int, rounds: int, span: float
) -> list[Sample]:
    import httpx

    keys = [u["key"] for u in bench.data["users"]]
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency)
    samples: list[Sample] = []
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one_client(index: int) -> None:
            await asyncio.sleep(random.uniform(0, span))
            for _ in range(rounds):
                samples.append(await openai_stream(client, bench, keys[index % len(keys)], model))

        await asyncio.gather(*[one_client(i) for i in range(concurrency)])
    return samples


class RssPeak:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._task = pid, 0, None

    async def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, web_rss(self.pid))
            await asyncio.sleep(0.2)

    def __enter__(self) -> RssPeak:
        self._task = asyncio.ensure_future(self._watch())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._task.cancel()


async def part_d(bench: Bench) -> dict:
    print("(d) OpenAI-compatible endpoint, streaming", flush=True)
    tokens, delay = FAKES["paced"]
    span = tokens * delay
    rows = []
    start_web(bench, bench.args.server)  # a fresh process, for its peak RSS
    pid = bench.web.process.pid
    with RssPeak(pid) as peak:
        await measure_openai(bench, "bench-paced", 5, 1, 0.0)  # warm-up
        for concurrency in bench.args.openai_levels:
            direct = await measure_direct(
                bench.fakes["paced"], concurrency, bench.args.rounds, span
            )
            through = await measure_openai(
                bench, "bench-paced", concurrency, bench.args.rounds, span
            )
            row = print_level("openai", concurrency, direct, through, tokens)
            row["legs"] = print_legs(bench, through, "chunk")
            rows.append(row)
        throughput = []
        for concurrency in bench.args.burst_levels:
            start = time.perf_counter()
            samples = await measure_openai(bench, "bench-burst", concurrency, 1, 0.0)
            wall = time.perf_counter() - start
            relayed = sum(s.tokens for s in samples)
            cpu = cpu_seconds(pid)
            throughput.append({"concurrency": concurrency, "tokens_per_s": relayed / wall})
            print(
                f"  unpaced {concurrency:3d} concurrent: {relayed} tokens in {wall:.2f} s = "
                f"{relayed / wall:.0f} tokens/s relayed (web CPU total {cpu:.1f} s)",
                flush=True,
            )
    label = "web process" if bench.args.web_workers == 1 else "largest web worker process"
    print(f"  {label}'s peak RSS during (d): {peak.peak / 2**20:.0f} MiB", flush=True)
    return {"levels": rows, "throughput": throughput, "peak_rss": peak.peak}


# --- main -----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="a,r,b,c,d")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="agentstore_bench_chat")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="threads")
    # The recommended worker set-up (make worker): 100 threads sharing 32 connections.
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--db-pool", type=int, default=32, help="DB_POOL_SIZE of the workers")
    parser.add_argument(
        "--web-workers",
        type=int,
        default=1,
        help="uvicorn worker processes (make serve runs WEB_CONCURRENCY=2); parts a and d",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ws-levels", default="1,50,200")
    parser.add_argument("--relay-levels", default="1,200,1000")
    parser.add_argument("--idle-levels", default="1000,5000")
    parser.add_argument("--idle-per-chat", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--openai-levels", default="1,10,50")
    parser.add_argument("--burst-levels", default="10,50")
    parser.add_argument("--chats-per-user", type=int, default=25)
    parser.add_argument(
        "--ws-ping-interval", type=float, default=20.0, help="uvicorn's (20 s by default)"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, smaller levels")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    explicit = {
        action.dest: getattr(args, action.dest)
        for action in parser._actions  # noqa: SLF001
        if any(option in sys.argv for option in action.option_strings)
    }
    if args.quick:
        args.rounds = 1
        args.ws_levels, args.relay_levels = "1,20", "1,100"
        args.idle_levels, args.openai_levels, args.burst_levels = "500", "1,10", "10"
        args.idle_seconds = 5.0
    for name, value in explicit.items():  # what the command line gave wins over --quick
        setattr(args, name, value)
    for name in ("ws_levels", "relay_levels", "idle_levels", "openai_levels", "burst_levels"):
        setattr(args, name, [int(x) for x in str(getattr(args, name)).split(",") if x])
    args.parts = set(args.parts.split(","))
    args.max_ws = max([*args.ws_levels, *args.relay_levels, 20])
    args.idle_max = max(args.idle_levels, default=0)
    return args


async def run_parts(bench: Bench) -> dict:
    results: dict[str, Any] = {}
    parts = bench.args.parts
    if "r" in parts:
        results["r"] = await part_r(bench)
    if "b" in parts:
        results["b"] = await part_b(bench)
    if "c" in parts:
        results["c"] = await part_c(bench)
    if "a" in parts:
        results["a"] = await part_a(bench)
    if "d" in parts:
        results["d"] = await part_d(bench)
    return results


def main() -> None:
    args = parse_args()
    limit = raise_fd_limit()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    bench = Bench(args=args, log_dir=log_dir)
    print(
        f"chat benchmark: {args.server}, {args.workers} Celery worker(s) × {args.pool}"
        f"({args.threads}, db pool {args.db_pool}), python {platform.python_version()}, "
        f"{os.cpu_count()} cores, "
        f"fd limit {limit}, logs in {log_dir}",
        flush=True,
    )
    try:
        setup(bench)
        print(
            f"  web server pid {bench.web.process.pid}, "
            f"RSS {rss_bytes(bench.web.process.pid) / 2**20:.0f} MiB after start",
            flush=True,
        )
        results = asyncio.run(run_parts(bench))
        (log_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"results: {log_dir / 'results.json'}", flush=True)
    finally:
        teardown(bench)


if __name__ == "__main__":
    main()
