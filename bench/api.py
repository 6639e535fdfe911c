"""API benchmark (run by hand): gunicorn (2 workers) on PostgreSQL, load from a second process.

    .venv/bin/python bench/api.py [--seconds 60] [--rate 400] [--conns 8] [--instances 0]
                                  [--database-url .../flowdesk_bench_api] [--keep-database]
    .venv/bin/python bench/api.py --instances 1000000 --seconds 30   # the detail at 1M instances
    .venv/bin/python bench/api.py --seconds 1 --rate 20 --conns 2 --no-wrk  # the smoke test's size

It (re)creates the database (not with ``--keep-database``), migrates, imports the pizza
definition, creates a service account with a token and a grant, seeds ``--instances`` instances
(bench/seeding.py) and starts one more through the engine (the one the GETs read), starts gunicorn on 127.0.0.1 and runs two phases from a separate load
process (wrk for the POSTs when installed, else this script's own Python load generator), and
prints the CPU each request cost in gunicorn, in PostgreSQL and in the load generator:

gunicorn runs ``FLOWDESK_WEB_WORKERS`` workers (default 2, one per core; set it to compare).

1. POST /api/processes/ (a new business key per request) at full speed, ``--conns``
   connections (wrk): starts per second and latency percentiles. Target: ≥ 300 starts/s with
   p99 ≤ 50 ms.
2. GET /api/processes/{id}/ at full speed, ``--conns`` connections (wrk): how many the server
   answers per second. Target: ≥ 400 req/s with p99 ≤ 50 ms.
3. GET /api/processes/{id}/ at a fixed rate (``--rate``, default 400 req/s, open loop: latency is
   measured from the moment a request was due, so a stalled server cannot hide its queue).
   Target: p99 ≤ 50 ms at that rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import ROOT, add_database_options, bench_env, database_name, var_dir

PY = sys.executable

# what wrk prints at the end: one JSON line
WRK_DONE = r"""
done = function(summary, latency, requests)
  io.write(string.format("JSON{\"requests\":%d,\"seconds\":%f,\"p50\":%f,\"p99\":%f,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""

WRK_POST = r"""
local counter = 0
local next_tid = 0
-- "tid" must stay a global: thread:set() writes the thread's globals, a local would shadow it and
-- every thread would send the same business keys (answered 200 "already running", not started).
setup = function(thread) thread:set("tid", next_tid); next_tid = next_tid + 1 end
init = function(args) prefix = args[1] .. "-" .. tid .. "-" end
request = function()
  counter = counter + 1
  local body = '{"definition":"pizza","business_key":"' .. prefix .. counter .. '","input":{"n":' .. counter .. '}}'
  return wrk.format("POST", "/api/processes/", {["Content-Type"]="application/json",
    ["Authorization"]="Token " .. token}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str, keep: bool, instances: int) -> tuple[str, str]:
    """The database: the pizza definition, a service account with a token and a grant,
    ``instances`` seeded instances (bench/seeding.py) and one started through the engine, the
    one the GET phases read. Returns (token, that instance's id)."""
    from common import definition_file, import_definition, person, recreate_database, setup_django

    if not keep:
        recreate_database(url)
    setup_django(url)
    import seeding
    from django.db import connections
    from guardian.shortcuts import assign_perm
    from rest_framework.authtoken.models import Token

    from processes import engine
    from processes.events import Actor

    definition = import_definition(definition_file("pizza.json"), key="pizza")
    user = person("bench-shop")
    for perm in ("start_process", "view_process", "operate_process"):
        assign_perm("processes." + perm, user, definition)
    token = Token.objects.get_or_create(user=user)[0].key
    if instances:
        seeding.seed_processes([definition], instances, tag="api", prefix="SEED-")
    process = engine.process_start(
        definition_key="pizza", business_key="BENCH-READ", input={"customer": "Ada"},
        actor=Actor.for_user(user),
    ).process  # fmt: skip
    connections.close_all()  # the backends counted from here on are the server's
    return token, str(process.pk)


def start_gunicorn(env: dict, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", os.environ.get("FLOWDESK_WEB_WORKERS", "2"), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def cpu_seconds(server_pid: int, db: str) -> dict[str, float]:
    """CPU seconds so far of gunicorn (master and workers), the database's backends and the load
    generators this script ran (wrk or its own, counted once they have exited)."""
    hz = os.sysconf("SC_CLK_TCK")
    roles = {"gunicorn": 0.0, "postgresql": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline") as f:
                cmd = f.read().replace("\0", " ")
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / hz
        if int(pid) == server_pid or int(fields[1]) == server_pid:
            roles["gunicorn"] += cpu
        elif cmd.startswith("postgres:") and f" {db} " in cmd:
            roles["postgresql"] += cpu
    times = os.times()
    roles["load generator"] = times.children_user + times.children_system
    return roles


def cpu_per_request(before: dict, after: dict, requests: int) -> str:
    return ", ".join(
        f"{role} {1000 * (after[role] - before[role]) / max(requests, 1):.1f}" for role in before
    )


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --- the Python load generators (each runs in its own process: `bench/api.py --load ...`) --------


def load_post(url: str, token: str, seconds: float, conns: int) -> dict:
    """POST starts with new business keys from ``conns`` threads at full speed (when no wrk)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    lock = threading.Lock()
    end = time.perf_counter() + seconds
    started = time.perf_counter()

    def worker(index: int) -> None:
        nonlocal errors
        n = 0
        while (sent := time.perf_counter()) < end:
            n += 1
            body = {"definition": "pizza", "business_key": f"B-{os.getpid()}-{index}-{n}"}
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                conn.request("POST", parts.path, body=json.dumps(body), headers=headers)
                r = conn.getresponse()
                r.read()
                conn.close()
            except (OSError, http.client.HTTPException):
                with lock:
                    errors += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - sent)
                statuses[r.status] = statuses.get(r.status, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(latencies, statuses, errors, time.perf_counter() - started)


def _summary(latencies, statuses, errors, elapsed) -> dict:
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50) * 1000,
        "p99": pct(latencies, 99) * 1000,
        "statuses": statuses,
        "errors": errors,
    }


def load_get_open_loop(url: str, token: str, seconds: float, rate: float) -> dict:
    """GET ``url`` at ``rate`` per second, open loop, from one asyncio thread.

    Request k is sent at start + k / rate whatever came back before, and its latency counts
    from that moment, so a stalled server cannot hide its queue. One thread with no locks keeps
    the generator's own CPU small on a machine it shares with the server (gunicorn's sync
    workers close every connection, so each request opens its own).
    """
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Authorization: Token {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            status = int(answer[9:12])
        except (TimeoutError, OSError, ValueError):
            errors += 1
            return
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1

    async def run() -> float:
        start = time.perf_counter()
        end = start + seconds
        pending = []
        k = 0
        while (due := start + k / rate) < end:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(due)))
            k += 1
        await asyncio.gather(*pending)
        return time.perf_counter() - start

    return _summary(latencies, statuses, errors, asyncio.run(run()))


def load_in_subprocess(mode, url, token, seconds, rate, conns) -> dict:
    out = subprocess.run(
        [PY, __file__, "--load", mode, "--url", url, "--token", token, "--seconds", str(seconds),
         "--rate", str(rate), "--conns", str(conns)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_wrk(base: str, script: str, seconds: int, conns: int, *script_args: str) -> dict:
    """Run wrk with ``script`` (+ WRK_DONE) from 2 threads and ``conns`` connections; its JSON."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + WRK_DONE)
    command = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", f.name, base]
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    os.unlink(f.name)
    line = next(x for x in out.stdout.splitlines() if x.startswith("JSON"))
    data = json.loads(line[4:])
    data["rps"] = data["requests"] / data["seconds"]
    return data


def wrk_post(base: str, token: str, seconds: int, conns: int) -> dict:
    """POST starts with new business keys at full speed."""
    script = f'token = "{token}"\n' + WRK_POST
    return run_wrk(base, script, seconds, conns, f"W{int(time.time())}")


WRK_GET = r"""
request = function()
  return wrk.format("GET", path, {["Authorization"]="Token " .. token})
end
"""


def wrk_get(base: str, path: str, token: str, seconds: int, conns: int) -> dict:
    """GET ``path`` at full speed from wrk's ``conns`` connections: the server's capacity."""
    return run_wrk(base, f'token = "{token}"\npath = "{path}"\n' + WRK_GET, seconds, conns)


def started_processes(url: str) -> int:
    """Instances the POST phase really created (a repeated business key answers 200, no start)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM processes_processinstance WHERE business_key LIKE 'W%%'"
        ).fetchone()[0]


def refuse_errors(name: str, result: dict | None, server_log: str) -> None:
    """A run whose answers were not 2xx measured an error page, not the API: stop and say so."""
    bad = {
        status: count
        for status, count in ((result or {}).get("statuses") or {}).items()
        if not 200 <= int(status) < 300
    }
    if (result or {}).get("non2xx"):
        bad["not 2xx (wrk)"] = result["non2xx"]
    if bad or (result or {}).get("errors"):
        raise SystemExit(
            f"{name}: answers not 2xx {bad}, connection errors {result.get('errors')}: "
            f"the figures above are not the API's (server log: {server_log})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument(
        "--instances",
        type=int,
        default=0,
        help="seeded instances besides the one read (1M: 1000000)",
    )
    add_database_options(parser, "flowdesk_bench_api")
    parser.add_argument("--db", help="the database's name on FLOWDESK_BENCH_PG (old spelling)")
    parser.add_argument("--load", choices=["get", "post"])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--no-wrk", action="store_true")
    args = parser.parse_args()
    if args.load == "get":
        print(json.dumps(load_get_open_loop(args.url, args.token, args.seconds, args.rate)))
        return
    if args.load:
        print(json.dumps(load_post(args.url, args.token, args.seconds, args.conns)))
        return

    url = args.database_url
    if args.db:
        url = f"{url.rsplit('/', 1)[0]}/{args.db}"
    db = database_name(url)
    env = bench_env(
        url, DJANGO_DEBUG="0",
        # connections outlive a phase, so the backends' CPU can be read before and after it
        FLOWDESK_DB_CONN_MAX_AGE=os.environ.get("FLOWDESK_DB_CONN_MAX_AGE", "600"),
    )  # fmt: skip
    print(f"preparing database {db} ...", flush=True)
    token, process_id = prepare(url, args.keep_database, args.instances)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(var_dir() / "bench-api-gunicorn.log", "wb")  # noqa: SIM115
    server = start_gunicorn(env, port, log)
    try:
        use_wrk = shutil.which("wrk") and not args.no_wrk
        print(f"POST /api/processes/ for {args.seconds:.0f}s, {args.conns} connections "
              f"({'wrk' if use_wrk else 'python'}) ...", flush=True)  # fmt: skip
        cpu = cpu_seconds(server.pid, db)
        if use_wrk:
            post = wrk_post(base, token, int(args.seconds), args.conns)
        else:
            post = load_in_subprocess(
                "post", f"{base}/api/processes/", token, args.seconds, 0, args.conns
            )
        if use_wrk:
            post["created"] = started_processes(url)
        print(f"  starts/s {post['rps']:.0f}  p50 {post['p50']:.1f} ms  p99 {post['p99']:.1f} ms  "
              f"{post}", flush=True)  # fmt: skip
        cpu, was = cpu_seconds(server.pid, db), cpu
        print(f"  CPU ms per request: {cpu_per_request(was, cpu, post['requests'])}", flush=True)
        capacity = None
        if use_wrk:
            print(f"GET /api/processes/{{id}}/ at full speed for {args.seconds:.0f}s, "
                  f"{args.conns} connections (wrk) ...", flush=True)  # fmt: skip
            capacity = wrk_get(
                base, f"/api/processes/{process_id}/", token, int(args.seconds), args.conns
            )
            print(f"  req/s {capacity['rps']:.0f}  p50 {capacity['p50']:.1f} ms  "
                  f"p99 {capacity['p99']:.1f} ms  {capacity}", flush=True)  # fmt: skip
            cpu, was = cpu_seconds(server.pid, db), cpu
            print(f"  CPU ms per request: {cpu_per_request(was, cpu, capacity['requests'])}")
        print(f"GET /api/processes/{{id}}/ at {args.rate:.0f} req/s for {args.seconds:.0f}s "
              "(python asyncio, open loop) ...", flush=True)  # fmt: skip
        get = load_in_subprocess(
            "get", f"{base}/api/processes/{process_id}/", token, args.seconds, args.rate, 0
        )
        print(f"  req/s {get['rps']:.0f}  p50 {get['p50']:.1f} ms  p99 {get['p99']:.1f} ms  "
              f"{get}", flush=True)  # fmt: skip
        cpu, was = cpu_seconds(server.pid, db), cpu
        print(f"  CPU ms per request: {cpu_per_request(was, cpu, get['requests'])}", flush=True)
        for name, result in (("POST", post), ("GET", get), ("GET (wrk)", capacity)):
            refuse_errors(name, result, log.name)
        ok_post = post["rps"] >= 300 and post["p99"] <= 50
        ok_capacity = capacity is not None and capacity["rps"] >= 400 and capacity["p99"] <= 50
        ok_get = get["p99"] <= 50 and get["rps"] >= args.rate * 0.95
        print(f"targets: POST ≥ 300 starts/s, p99 ≤ 50 ms {'OK' if ok_post else 'MISSED'}; "
              f"GET ≥ 400 req/s, p99 ≤ 50 ms {'OK' if ok_capacity else 'MISSED'}; "
              f"GET p99 ≤ 50 ms at {args.rate:.0f} req/s {'OK' if ok_get else 'MISSED'}")  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
        log.close()


if __name__ == "__main__":
    main()
