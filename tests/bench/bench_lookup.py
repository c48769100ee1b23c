"""Benchmark: helpdesk lookups and public redirects against `bascule web serve` over 1,000,000 mapped links (run on
demand, not by pytest).

    .venv/bin/python tests/bench/bench_lookup.py [--links 1000000] [--clients 100] [--rate 200] [--seconds 30]
                                                 [--workers 2] [--database-url URL]

Setup (timed, not the point): a state database (SQLite in a temporary directory unless --database-url) migrated to
the current schema, one tenant with `--links` Visio rooms and as many links (Zoom, Teams and Webex keys; one link in
ten rolled back, so that the redirect also answers its explanation page), one helpdesk agent. Then `bascule web serve
--workers N` in its own process group, and `--clients` concurrent HTTP clients (keep-alive, one connection each) on
loopback, each alternating a helpdesk lookup (`GET /api/links/lookup?q=<old link as pasted>`) and a redirect
(`GET /l/<key>`), on random links:

1. **paced**: the clients together send `--rate` requests per second (each on its own fixed schedule, late requests
   sent at once, so a slow server shows as latency, not as fewer requests) — the load of a helpdesk floor;
2. **saturated**: each client sends its next request as soon as the previous answer arrives — the throughput
   ceiling (latency there is queueing: concurrency / throughput).

Latency is measured from the scheduled send time to the last byte. An error is an exception, a 5xx or an answer
other than the expected one (the lookup's Visio URL; the redirect's 303 to the room or its 404 page). The agent's
session cookie is signed with the server's BASCULE_WEB_SESSION_SECRET as Starlette's SessionMiddleware does (login
is not what is measured). Prints one JSON object on its last line and writes it to tests/bench/results/lookup.json.
The goal of issue 13: p99 ≤ 20 ms and 0 errors at the paced rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results"
sys.path.insert(0, str(REPO))

TENANT = "min-bench"
AGENT = "helpdesk.bench@interieur.gouv.fr"
BATCH = 20_000


def _link(index: int) -> tuple[str, str, str, str]:
    """(platform, old key, old URL as a caller pastes it, meeting id) of link `index`."""
    kind = index % 3
    if kind == 0:
        meeting = str(80_000_000_000 + index)
        return "zoom", f"zoom:{meeting}", f"https://interieur-gouv.zoom.us/j/{meeting}?pwd=x{index}", meeting
    if kind == 1:
        mtid = f"m{index:032x}"
        return "webex", f"webex:mtid:{mtid}", f"https://interieur.webex.com/interieur/j.php?MTID={mtid}", mtid
    thread = f"19:meeting_{index:032x}@thread.v2"
    return "teams", f"teams:{thread}", "https://teams.microsoft.com/l/meetup-join/" + thread.replace(
        ":", "%3a").replace("@", "%40") + "/0", thread


def populate(url: str, links: int) -> dict[str, Any]:
    """The tenant, its rooms and links, the helpdesk agent; returns what the clients need."""
    from sqlalchemy import insert, select

    from core.access import Role
    from core.links import lookup_keys
    from db import models
    from db.access import AccessRepository
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade
    from db.models import table_of

    upgrade(url)
    now = datetime.now(UTC)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    room, link = table_of(models.Room), table_of(models.Link)
    with factory.begin() as session:
        session.execute(insert(table_of(models.Tenant)), [{
            "id": TENANT, "name": "Ministère du banc d'essai", "registered_at": now, "updated_at": now}])
        AccessRepository(session).grant(TENANT, AGENT, Role.HELPDESK, actor="bench", now=now)
    for start in range(0, links, BATCH):
        indexes = range(start, min(start + BATCH, links))
        with factory.begin() as session:
            first = session.execute(select(models.Room.id).order_by(models.Room.id.desc()).limit(1)
                                    ).scalar_one_or_none() or 0
            session.execute(insert(room), [{
                "tenant_id": TENANT, "meet_id": f"room-{i}", "action_key": f"bench:{i}",
                "slug": f"{i % 1000:03d}-{i // 1000 % 10000:04d}-bch", "url": f"https://visio.numerique.gouv.fr/"
                f"{i % 1000:03d}-{i // 1000 % 10000:04d}-bch", "access_level": "trusted",
                "owner_email": f"agent-{i % 200_000:06d}@interieur.gouv.fr", "created_at": now} for i in indexes])
            rows = []
            for offset, i in enumerate(indexes):
                platform, key, old_url, meeting = _link(i)
                rows.append({"tenant_id": TENANT, "old_key": key, "platform": platform, "old_url": old_url,
                             "meeting_external_id": meeting, "topic": f"Réunion {i}", "host_anchor": None,
                             "room_id": first + offset + 1, "wave_id": None,
                             "status": "reverted" if i % 10 == 9 else "mapped", "updated_at": now})
            session.execute(insert(link), rows)
        print(f"  {min(start + BATCH, links):,} links", file=sys.stderr, end="\r")
    engine.dispose()
    chosen = random.Random(7).sample(range(links), min(links, 5000))
    sample = [_link(i) for i in chosen]
    for _platform, key, old_url, _meeting in sample:  # the references the clients paste name the stored key
        assert key in lookup_keys(old_url), (key, old_url)
    return {"sample": [(key, old_url) for _platform, key, old_url, _meeting in sample],
            "reverted": [_link(i)[1] for i in chosen if i % 10 == 9]}


def session_cookie(secret: str) -> str:
    """The signed session of a logged-in helpdesk agent, as Starlette's SessionMiddleware writes it."""
    from itsdangerous import TimestampSigner

    session = {"agent": {"sub": "bench-agent", "email": AGENT, "name": "Agent banc d'essai", "at": time.time()},
               "csrf": secrets.token_urlsafe(32)}
    data = base64.b64encode(json.dumps(session).encode())
    return TimestampSigner(secret).sign(data).decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(url: str, workers: int, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "BASCULE_DATABASE_URL": url, "BASCULE_WEB_SESSION_SECRET": secret,
           "BASCULE_WEB_PUBLIC_URL": f"http://127.0.0.1:{port}", "PREFECT_LOGGING_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "web", "serve", "--port", str(port),
                                "--workers", str(workers)], cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bascule web serve exited:\n{process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("bascule web serve did not answer /health within 60 s")


class Outcome:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"lookup": [], "redirect": []}
        self.errors: dict[str, int] = {}

    def error(self, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection, read and written with asyncio streams: a client that costs the machine
    far less than the server it measures (httpx spends ~2 ms of CPU per request, as much as the server does, and
    both share the same two cores here)."""

    def __init__(self, host: str, port: int, cookie: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nCookie: bascule_session={cookie}\r\nAccept: */*\r\n\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {target} HTTP/1.1\r\n{self.head}".encode())
        await self.writer.drain()
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            raise ValueError("no Content-Length")
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def _one(connection: Connection, kind: str, item: tuple[str, str], outcome: Outcome,
               scheduled: float) -> None:
    key, old_url = item
    try:
        if kind == "lookup":
            status, _headers, body = await connection.get("/api/links/lookup?" + urlencode({"q": old_url}))
            links = json.loads(body).get("links") or [] if status == 200 else []
            ok = status == 200 and any(found.get("old_key") == key for found in links)
        else:
            status, headers, _body = await connection.get("/l/" + quote(key, safe=":@"))
            ok = (status == 303 and headers.get("location", "").startswith("https://visio.numerique.gouv.fr/")
                  ) or (status == 404 and key_is_reverted(key))
        if not ok:
            outcome.error(f"{kind}:{status}")
            return
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        outcome.error(f"{kind}:{type(error).__name__}")
        await connection.close()
        return
    outcome.latencies[kind].append(time.perf_counter() - scheduled)


def key_is_reverted(key: str) -> bool:
    """Whether link `key` was stored rolled back (one in ten: the redirect answers its explanation page)."""
    return key in REVERTED


REVERTED: set[str] = set()


async def drive(base: str, cookie: str, sample: list[tuple[str, str]], *, clients: int, seconds: float,
                rate: float | None) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    outcome = Outcome()
    started = time.perf_counter()
    stop = started + seconds

    async def client_loop(number: int) -> None:
        rng = random.Random(number)
        interval = clients / rate if rate else 0.0
        next_at = started + rng.random() * interval
        connection = Connection(host, int(port), cookie)
        turn = number
        try:
            while True:
                now = time.perf_counter()
                if rate:
                    if next_at >= stop:
                        return
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    scheduled = next_at
                    next_at += interval
                else:
                    if now >= stop:
                        return
                    scheduled = now
                kind = "lookup" if turn % 2 == 0 else "redirect"
                turn += 1
                await _one(connection, kind, rng.choice(sample), outcome, scheduled)
        finally:
            await connection.close()

    await asyncio.gather(*(client_loop(number) for number in range(clients)))
    elapsed = time.perf_counter() - started
    every = sorted(latency for values in outcome.latencies.values() for latency in values)
    return {"requests": len(every) + sum(outcome.errors.values()), "errors": sum(outcome.errors.values()),
            "error_kinds": outcome.errors, "requests_per_second": round(len(every) / elapsed, 1),
            "p50_ms": _percentile(every, 50), "p99_ms": _percentile(every, 99), "max_ms": _percentile(every, 100),
            **{f"{kind}_p99_ms": _percentile(sorted(values), 99) for kind, values in outcome.latencies.items()}}


def _percentile(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="requests per second of the paced phase (100 agents, one request a second each)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each phase")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of `web serve`")
    parser.add_argument("--database-url", help="an existing empty database (default: SQLite in a temp directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bascule-bench-lookup-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'bascule.db'}"
        began = time.perf_counter()
        setup = populate(url, args.links)
        setup_seconds = round(time.perf_counter() - began, 1)
        secret = secrets.token_urlsafe(48)
        process, base = serve(url, args.workers, secret)
        try:
            cookie = session_cookie(secret)
            REVERTED.update(setup["reverted"])
            asyncio.run(drive(base, cookie, setup["sample"][:200], clients=args.clients, seconds=3, rate=None))
            paced = asyncio.run(drive(base, cookie, setup["sample"], clients=args.clients, seconds=args.seconds,
                                      rate=args.rate))
            saturated = asyncio.run(drive(base, cookie, setup["sample"], clients=args.clients,
                                          seconds=args.seconds, rate=None))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    result = {"benchmark": "lookup", "links": args.links, "clients": args.clients, "workers": args.workers,
              "database": url.split(":", 1)[0], "setup_seconds": setup_seconds, "cpus": os.cpu_count(),
              "paced": {"target_rate": args.rate, **paced}, "saturated": saturated,
              "goal_met": bool(paced["errors"] == 0 and (paced["p99_ms"] or 1e9) <= 20.0),
              "at": datetime.now(UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lookup.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
