"""Run overhead benchmark: an agent run on the real Celery + Redis path vs the model alone.

The fake OpenAI-compatible server (``tests/fakes/openai_server.py``) streams ``--tokens``
tokens ``--delay`` seconds apart. For 1, 10 and 50 concurrent requests it measures

* **direct** (the floor): N concurrent streaming ``chat/completions`` requests with httpx;
  time to the first content chunk and to the end of the stream;
* **run**: N one-off runs of a ``dialog`` agent whose model is a ``custom`` provider on
  the fake server, dispatched with ``apply_async`` to real Celery worker subprocesses
  (Redis broker, PostgreSQL); time from dispatch to the first ``TEXT_MESSAGE_CONTENT``
  event and to the terminal event, both observed on the run's channel-layer group
  (channels-redis) from this process — what a WebSocket consumer would see.

Each level is measured two ways (``--modes``):

* **steady** — N concurrent runs the way a load generator keeps N in flight: N clients,
  each dispatching its next run when its last one ends, their first starts spread over
  one answer's duration (ramp-up), ``--rounds`` runs each. This is the reading of "N
  concurrent runs" the targets are judged on.
* **burst** — N runs dispatched in the same instant, ``--rounds`` times: the worst case,
  where every run's start-up work queues behind the others'.

The direct floor is measured the same way for each mode. It prints p50/p95 of each, the
added milliseconds (run − direct; the added p95 is the run's p95 minus the floor's
median, so a slow direct request cannot make it look smaller) and the throughput ratio
(direct total time / run total time, per stream). Targets: added time to first token
p50 ≤ 20 ms and p95 ≤ 60 ms at 10 concurrent; throughput ratio ≥ 0.9.

Not part of the test suite. Uses the PostgreSQL database and Redis DB you give it
(migrated on start; a bench user, agent and model are created once, the bench agent's runs
of earlier invocations are deleted):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentstore_f \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/run_overhead.py [--tokens 200] [--delay 0.01] \\
        [--concurrency 1,10,50] [--rounds 3] [--modes steady,burst] [--workers 2] \\
        [--pool threads] [--threads 100] [--db-pool 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Sample:
    ttft: float
    total: float
    tokens: int = 0
    to_claim: float = 0.0  # dispatch → the worker claimed the run (run.started_at)
    to_token: float = 0.0  # claim → first token from the model (run.first_token_at)
    run_id: str = ""
    wall: float = 0.0


@dataclass
class Level:
    concurrency: int
    mode: str = "steady"
    direct: list[Sample] = field(default_factory=list)
    run: list[Sample] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float) -> str:
    return f"{value * 1000:7.1f}"


# --- the direct floor --------------------------------------------------------------------


async def direct_stream(client, url: str) -> Sample:
    body = {
        "model": "fake-model",
        "stream": True,
        "messages": [{"role": "user", "content": "Count"}],
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    tokens += 1
                    if first is None:
                        first = time.perf_counter()
    end = time.perf_counter()
    return Sample(ttft=(first or end) - start, total=end - start, tokens=tokens)


async def measure_direct(base_url: str, concurrency: int) -> list[Sample]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        url = f"{base_url}/chat/completions"
        return list(await asyncio.gather(*[direct_stream(client, url) for _ in range(concurrency)]))


async def steady(concurrency: int, per_client: int, spread: float, one) -> list[Sample]:
    """``concurrency`` clients, each making ``per_client`` requests back to back with
    ``one()``; client *i* starts ``i × spread / concurrency`` seconds in, so ``spread`` =
    one answer's duration keeps ``concurrency`` streams in flight with their starts spread
    evenly (a load generator's ramp-up), instead of all of them in the same instant."""

    async def client(index: int) -> list[Sample]:
        await asyncio.sleep(index * spread / concurrency)
        return [await one() for _ in range(per_client)]

    results = await asyncio.gather(*[client(i) for i in range(concurrency)])
    return [sample for samples in results for sample in samples]


async def measure_direct_steady(base_url: str, concurrency: int, per_client: int, spread: float):
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        url = f"{base_url}/chat/completions"
        return await steady(concurrency, per_client, spread, lambda: direct_stream(client, url))


# --- through a run ------------------------------------------------------------------------


async def follow(layer, channel: str, start: list[float]) -> Sample:
    first = None
    tokens = 0
    while True:
        message = await asyncio.wait_for(layer.receive(channel), timeout=120)
        event = message["event"]
        if event["type"] == "TEXT_MESSAGE_CONTENT":
            tokens += event["delta"].count(" ")
            if first is None:
                first = time.perf_counter()
        elif event["type"] in {"RUN_FINISHED", "RUN_ERROR"}:
            end = time.perf_counter()
            if event["type"] == "RUN_ERROR":
                raise RuntimeError(f"run failed: {event.get('code')}: {event.get('message')}")
            return Sample(ttft=(first or end) - start[0], total=end - start[0], tokens=tokens)


async def measure_runs(setup: dict, concurrency: int) -> list[Sample]:
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from chats import events
    from chats.models import Run
    from chats.tasks import run_execute_task

    def create() -> list[str]:
        runs = [
            Run(
                user_id=setup["user_id"],
                agent_id=setup["agent_id"],
                agent_version_id=setup["version_id"],
                source=Run.Source.ONEOFF,
                input={"text": "Count", "context": {}},
            )
            for _ in range(concurrency)
        ]
        Run.objects.bulk_create(runs)
        return [str(run.pk) for run in runs]

    layer = get_channel_layer()
    run_ids = await sync_to_async(create)()
    channels = []
    for run_id in run_ids:
        channel = await layer.new_channel()
        await layer.group_add(events.run_group(run_id), channel)
        channels.append(channel)
    starts = [[0.0] for _ in run_ids]
    walls: dict[str, float] = {}
    followers = [
        asyncio.ensure_future(follow(layer, channel, start))
        for channel, start in zip(channels, starts, strict=True)
    ]
    await asyncio.sleep(0.05)  # the subscriptions are in place
    for run_id, start in zip(run_ids, starts, strict=True):
        start[0] = time.perf_counter()
        walls[run_id] = time.time()
        run_execute_task.apply_async(args=[run_id], queue=setup["queue"])
    samples = list(await asyncio.gather(*followers))

    def timings() -> dict[str, tuple]:
        return {
            str(pk): (started.timestamp(), token.timestamp() if token else None)
            for pk, started, token in Run.objects.filter(pk__in=run_ids).values_list(
                "pk", "started_at", "first_token_at"
            )
        }

    stamps = await sync_to_async(timings)()
    for run_id, sample in zip(run_ids, samples, strict=True):
        started, token = stamps[run_id]
        sample.to_claim = started - walls[run_id]
        sample.to_token = (token - started) if token else float("nan")
    for run_id, channel in zip(run_ids, channels, strict=True):
        await layer.group_discard(events.run_group(run_id), channel)
    return samples


async def measure_runs_steady(setup: dict, concurrency: int, per_client: int, spread: float):
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from chats import events
    from chats.models import Run
    from chats.tasks import run_execute_task

    layer = get_channel_layer()

    def create() -> str:
        run = Run.objects.create(
            user_id=setup["user_id"],
            agent_id=setup["agent_id"],
            agent_version_id=setup["version_id"],
            source=Run.Source.ONEOFF,
            input={"text": "Count", "context": {}},
        )
        return str(run.pk)

    async def one() -> Sample:
        run_id = await sync_to_async(create, thread_sensitive=False)()
        channel = await layer.new_channel()
        group = events.run_group(run_id)
        await layer.group_add(group, channel)
        start = [0.0]
        follower = asyncio.ensure_future(follow(layer, channel, start))
        await asyncio.sleep(0)
        start[0] = time.perf_counter()
        wall = time.time()
        run_execute_task.apply_async(args=[run_id], queue=setup["queue"])
        sample = await follower
        await layer.group_discard(group, channel)
        sample.run_id, sample.wall = run_id, wall
        return sample

    samples = await steady(concurrency, per_client, spread, one)

    def timings() -> dict[str, tuple]:
        return {
            str(pk): (started.timestamp(), token.timestamp() if token else None)
            for pk, started, token in Run.objects.filter(
                pk__in=[s.run_id for s in samples]
            ).values_list("pk", "started_at", "first_token_at")
        }

    stamps = await sync_to_async(timings)()
    for sample in samples:
        started, token = stamps[sample.run_id]
        sample.to_claim = started - sample.wall
        sample.to_token = (token - started) if token else float("nan")
    return samples


# --- set-up -------------------------------------------------------------------------------


def prepare(base_url: str) -> dict:
    from django.core.management import call_command

    from accounts.models import Role, User
    from agents.config import default_config
    from agents.models import Agent, AgentVersion
    from integrations.models import LLMModel, ProviderType

    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(
        username="bench-runner",
        defaults={"email": "bench-runner@example.com", "role": Role.DEVELOPER},
    )
    llm, _ = LLMModel.objects.update_or_create(
        display_name="Bench fake model",
        defaults={
            "provider_type": ProviderType.CUSTOM,
            "base_url": base_url,
            "model_name": "fake-model",
            "is_active": True,
        },
    )
    agent, _ = Agent.objects.get_or_create(
        slug="bench-run-overhead",
        defaults={"name": "Bench agent", "developer": user},
    )
    config = default_config("dialog")
    config["model"]["llm_model_id"] = str(llm.pk)
    config["system_prompt"] = "Count."
    version, _ = AgentVersion.objects.update_or_create(
        agent=agent, version="1.0.0", defaults={"config": config}
    )
    forget_earlier_runs(agent.pk)
    return {"user_id": user.pk, "agent_id": agent.pk, "version_id": version.pk}


def forget_earlier_runs(agent_id) -> None:
    """Delete the bench agent's runs of earlier invocations (and their events and steps),
    so every invocation writes to tables of the same size: ~6,000 events per invocation
    would otherwise pile up, and autovacuum start working on them mid-measurement."""
    from django.db import connection

    from chats.models import Run, RunEvent, RunStep

    run_table = Run._meta.db_table
    with connection.cursor() as cursor:
        for model in (RunEvent, RunStep):
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE run_id IN "  # noqa: S608 - our tables
                f"(SELECT id FROM {run_table} WHERE agent_id = %s)",
                [agent_id],
            )
        cursor.execute(f"DELETE FROM {run_table} WHERE agent_id = %s", [agent_id])  # noqa: S608
        for model in (RunEvent, RunStep, Run):  # autocommit: VACUUM cannot run in a transaction
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def start_workers(queue: str, args, log_dir: Path) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentstore.settings",
        "TASK_DISPATCH": "celery",
        "OUTBOUND_ALLOWLIST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DB_POOL_SIZE": str(args.db_pool),
    }
    workers = []
    for index in range(args.workers):
        log = (log_dir / f"worker-{index}.log").open("w")
        command = [
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
            f"bench-{index}-{queue}@%h",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--prefetch-multiplier=1",
        ]
        workers.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    deadline = time.monotonic() + 60
    for index in range(args.workers):
        path = log_dir / f"worker-{index}.log"
        while "ready." not in path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {index} not ready:\n{path.read_text()}")
            time.sleep(0.1)
    return workers


def report(levels: list[Level], args) -> None:
    print()
    print(
        f"tokens={args.tokens} delay={args.delay * 1000:.0f} ms, "
        f"workers={args.workers}×{args.pool}({args.threads}, db pool {args.db_pool}), "
        f"rounds={args.rounds}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores"
    )
    for mode in ("steady", "burst"):
        chosen = [level for level in levels if level.mode == mode]
        if chosen:
            print()
            print(MODE_TITLES[mode])
            report_levels(chosen, args)


MODE_TITLES = {
    "steady": "steady: N runs in flight, each client starting its next run when one ends, "
    "the clients' first starts spread over one answer",
    "burst": "burst: N runs dispatched in the same instant (worst case), per round",
}


def report_levels(levels: list[Level], args) -> None:
    print(
        "conc | direct TTFT p50/p95 | run TTFT p50/p95 | added TTFT p50/p95 "
        "| direct total p50 | run total p50 | added total p50 | throughput ratio"
    )
    for level in levels:
        d_ttft = [s.ttft for s in level.direct]
        r_ttft = [s.ttft for s in level.run]
        d_total = [s.total for s in level.direct]
        r_total = [s.total for s in level.run]
        added_p50 = pct(r_ttft, 0.5) - pct(d_ttft, 0.5)
        # The floor's median, not its p95: one slow direct request must not make the added
        # time negative (conservative: the added p95 includes the floor's own spread).
        added_p95 = pct(r_ttft, 0.95) - pct(d_ttft, 0.5)
        ratio = statistics.mean(d_total) / statistics.mean(r_total)
        print(
            f"{level.concurrency:4d} | {ms(pct(d_ttft, 0.5))} / {ms(pct(d_ttft, 0.95))} "
            f"| {ms(pct(r_ttft, 0.5))} / {ms(pct(r_ttft, 0.95))} "
            f"| {ms(added_p50)} / {ms(added_p95)} "
            f"| {ms(pct(d_total, 0.5))} | {ms(pct(r_total, 0.5))} "
            f"| {ms(pct(r_total, 0.5) - pct(d_total, 0.5))} | {ratio:6.3f}"
        )
        print(
            f"     run: dispatch→claim p50 {ms(pct([s.to_claim for s in level.run], 0.5))} ms, "
            f"claim→first model token p50 {ms(pct([s.to_token for s in level.run], 0.5))} ms"
        )
        slowest = sorted(level.run, key=lambda s: s.ttft)[-3:]
        print(
            "     slowest TTFT (dispatch→claim / claim→model token / TTFT): "
            + ", ".join(
                f"{s.to_claim * 1000:.0f}/{s.to_token * 1000:.0f}/{s.ttft * 1000:.0f}"
                for s in slowest
            )
        )
        lost = [s.tokens for s in level.run if s.tokens != args.tokens]
        if lost:
            print(f"     !! {len(lost)} runs did not relay {args.tokens} tokens: {lost[:5]}")


async def main_async(args, setup: dict, base_url: str) -> list[Level]:
    levels = []
    # Warm-up, so the figures are those of a worker that has been up for a while: every
    # worker thread, the connection pools, the first model build (a fresh thread pays ~10
    # ms to connect to PostgreSQL), and every pooled connection's prepared claim statement
    # (PostgreSQL plans it afresh for its first 5 executions on a connection, ~5 ms for
    # the first — the pool hands its connections out in turn, so that is 5 × DB_POOL_SIZE
    # runs per worker process).
    for _ in range(6):
        await measure_runs(setup, min(64, args.workers * max(1, args.db_pool)))
    await measure_direct(base_url, 4)
    spread = args.tokens * args.delay  # one answer's duration
    for concurrency in args.concurrency:
        if "steady" in args.modes:
            level = Level(concurrency, "steady")
            level.direct = await measure_direct_steady(base_url, concurrency, args.rounds, spread)
            await asyncio.sleep(0.2)
            level.run = await measure_runs_steady(setup, concurrency, args.rounds, spread)
            await asyncio.sleep(0.2)
            levels.append(level)
        if "burst" in args.modes:
            level = Level(concurrency, "burst")
            for _ in range(args.rounds):
                level.direct.extend(await measure_direct(base_url, concurrency))
                await asyncio.sleep(0.2)
                level.run.extend(await measure_runs(setup, concurrency))
                await asyncio.sleep(0.2)
            levels.append(level)
        print(f"  measured {concurrency} concurrent", flush=True)
    from chats import events

    await events.aclose_connections()
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument(
        "--rounds", type=int, default=3, help="burst rounds / runs per steady client"
    )
    parser.add_argument(
        "--modes", default="steady,burst", help="steady (the target's reading), burst, or both"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    # The recommended worker set-up (make worker): 100 threads sharing 32 connections.
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--db-pool", type=int, default=32, help="DB_POOL_SIZE of the workers")
    args = parser.parse_args()
    args.concurrency = [int(n) for n in args.concurrency.split(",")]
    args.modes = {mode.strip() for mode in args.modes.split(",")}
    if not (
        os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")
    ):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentstore.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ["TASK_DISPATCH"] = "celery"
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        # The fake model runs in its own process, so neither side pays for its CPU.
        server, base_url = start_fake_server(args, Path(tmp))
        setup = {**prepare(base_url), "queue": queue}
        workers = start_workers(queue, args, Path(tmp))
        try:
            levels = asyncio.run(main_async(args, setup, base_url))
        finally:
            for process in [*workers, server]:
                process.terminate()
            for process in [*workers, server]:
                process.wait(timeout=30)
        received = [
            (Path(tmp) / f"worker-{index}.log").read_text(errors="replace").count(" received")
            for index in range(len(workers))
        ]
    report(levels, args)
    print(f"runs received per worker process (warm-up included): {received}")


def start_fake_server(args, log_dir: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = log_dir / "fake-llm.log"
    command = [
        sys.executable,
        "-m",
        "tests.fakes.openai_server",
        "--port",
        str(port),
        "--tokens",
        str(args.tokens),
        "--delay",
        str(args.delay),
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        command, cwd=ROOT, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while "fake LLM server on" not in log_path.read_text(errors="replace"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"fake server did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}/v1"


if __name__ == "__main__":
    main()
