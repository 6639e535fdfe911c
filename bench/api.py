"""API benchmark (run by hand): gunicorn (2 workers) on PostgreSQL, load from a second process.

    .venv/bin/python bench/api.py [--seconds 60] [--rate 200] [--db flowdesk_bench_api]

It (re)creates the database, migrates, imports the pizza definition, creates a service account
with a token and a grant, starts gunicorn on 127.0.0.1 and runs two phases from a separate load
process (wrk when installed, else this script's own Python load generator):

1. POST /api/processes/ (a new business key per request) at full speed, 16 connections:
   starts per second and latency percentiles. Target: ≥ 150 starts/s.
2. GET /api/processes/{id}/ at a fixed rate (default 200 req/s, open loop: latency is measured
   from the moment a request was due, so a stalled server cannot hide its queue). Target:
   p99 ≤ 50 ms.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG = os.environ.get("FLOWDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")

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
done = function(summary, latency, requests)
  io.write(string.format("JSON{\"requests\":%d,\"seconds\":%f,\"p50\":%f,\"p99\":%f,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env, **kw):
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, **kw)


def prepare(db: str, env: dict) -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    run([PY, "manage.py", "migrate", "-v", "0"], env)
    script = """
import json
from guardian.shortcuts import assign_perm
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from processes import engine
from processes.events import Actor
data = json.load(open("processes/definitions/pizza.json"))
definition, _ = engine.definition_import(data=data, key="pizza", actor=Actor.system("bench"))
user = get_user_model().objects.create_user("bench-shop", password="pw")
for perm in ("start_process", "view_process", "operate_process"):
    assign_perm("processes." + perm, user, definition)
token = Token.objects.create(user=user).key
process = engine.process_start(definition_key="pizza", business_key="BENCH-READ",
                               input={"customer": "Ada"}, actor=Actor.for_user(user)).process
print(json.dumps({"token": token, "process": str(process.pk)}))
"""
    out = run([PY, "manage.py", "shell", "-c", script], env, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["token"], data["process"]


def start_gunicorn(env: dict, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--log-level", "warning"],
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


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --- the Python load generator (runs in its own process: `bench/api.py --load ...`) -------------


def load(mode: str, url: str, token: str, seconds: float, rate: float, conns: int) -> dict:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    lock = threading.Lock()
    start = time.perf_counter()
    end = start + seconds
    counter = iter(range(10**9))

    def worker(index: int) -> None:
        nonlocal errors
        n = 0
        while True:
            if mode == "get":  # open loop: request k is due at start + k / rate
                k = next(counter)
                due = start + k / rate
                if due >= end:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            else:
                due = time.perf_counter()
                if due >= end:
                    break
            n += 1
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                if mode == "get":
                    conn.request("GET", parts.path, headers=headers)
                else:
                    body = {"definition": "pizza", "business_key": f"B-{os.getpid()}-{index}-{n}"}
                    conn.request("POST", parts.path, body=json.dumps(body), headers=headers)
                r = conn.getresponse()
                r.read()
                conn.close()
                took = time.perf_counter() - due
                with lock:
                    latencies.append(took)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except (OSError, http.client.HTTPException):
                with lock:
                    errors += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50) * 1000,
        "p99": pct(latencies, 99) * 1000,
        "statuses": statuses,
        "errors": errors,
    }


def load_in_subprocess(mode, url, token, seconds, rate, conns) -> dict:
    out = subprocess.run(
        [PY, __file__, "--load", mode, "--url", url, "--token", token, "--seconds", str(seconds),
         "--rate", str(rate), "--conns", str(conns)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def wrk_post(base: str, token: str, seconds: int, conns: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'token = "{token}"\n' + WRK_POST)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", f.name, base,
         "--", f"W{int(time.time())}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    os.unlink(f.name)
    line = next(x for x in out.stdout.splitlines() if x.startswith("JSON"))
    data = json.loads(line[4:])
    data["rps"] = data["requests"] / data["seconds"]
    return data


def started_processes(db: str) -> int:
    """Instances the POST phase really created (a repeated business key answers 200, no start)."""
    import psycopg

    with psycopg.connect(f"{PG}/{db}") as conn:
        return conn.execute(
            "SELECT count(*) FROM processes_processinstance WHERE business_key LIKE 'W%%'"
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--db", default="flowdesk_bench_api")
    parser.add_argument("--load", choices=["get", "post"])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--no-wrk", action="store_true")
    args = parser.parse_args()
    if args.load:
        conns = args.conns if args.load == "post" else max(8, int(args.rate // 10))
        print(json.dumps(load(args.load, args.url, args.token, args.seconds, args.rate, conns)))
        return

    env = dict(os.environ, DATABASE_URL=f"{PG}/{args.db}", DJANGO_SETTINGS_MODULE="config.settings",
               FLOWDESK_LOG_LEVEL="WARNING", DJANGO_DEBUG="0",
               FLOWDESK_DB_CONN_MAX_AGE=os.environ.get("FLOWDESK_DB_CONN_MAX_AGE", "60"))  # fmt: skip
    print(f"preparing database {args.db} ...", flush=True)
    token, process_id = prepare(args.db, env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(ROOT / "var" / "bench-api-gunicorn.log", "wb")  # noqa: SIM115
    server = start_gunicorn(env, port, log)
    try:
        use_wrk = shutil.which("wrk") and not args.no_wrk
        print(f"POST /api/processes/ for {args.seconds:.0f}s, {args.conns} connections "
              f"({'wrk' if use_wrk else 'python'}) ...", flush=True)  # fmt: skip
        if use_wrk:
            post = wrk_post(base, token, int(args.seconds), args.conns)
        else:
            post = load_in_subprocess(
                "post", f"{base}/api/processes/", token, args.seconds, 0, args.conns
            )
        if use_wrk:
            post["created"] = started_processes(args.db)
        print(f"  starts/s {post['rps']:.0f}  p50 {post['p50']:.1f} ms  p99 {post['p99']:.1f} ms  "
              f"{post}", flush=True)  # fmt: skip
        print(f"GET /api/processes/{{id}}/ at {args.rate:.0f} req/s for {args.seconds:.0f}s "
              "(python, open loop) ...", flush=True)  # fmt: skip
        get = load_in_subprocess(
            "get", f"{base}/api/processes/{process_id}/", token, args.seconds, args.rate, 0
        )
        print(f"  req/s {get['rps']:.0f}  p50 {get['p50']:.1f} ms  p99 {get['p99']:.1f} ms  "
              f"{get}", flush=True)  # fmt: skip
        ok_post = post["rps"] >= 150
        ok_get = get["p99"] <= 50 and get["rps"] >= args.rate * 0.95
        print(f"targets: POST ≥ 150 starts/s {'OK' if ok_post else 'MISSED'}; "
              f"GET p99 ≤ 50 ms at {args.rate:.0f} req/s {'OK' if ok_get else 'MISSED'}")  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
        log.close()


if __name__ == "__main__":
    main()
