"""Every bench under bench/ runs, at a tiny size, on the test database: a bench that rots (a removed
import, a new NOT NULL column its seeding doesn't fill) fails here, not on the day someone wants
its figures. Each runs as a subprocess on this worker's test database (``--keep-database``: it
never drops it); the test asserts that it finished and printed its figures, nothing about their
values (speed is for the benches themselves)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT, need, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BENCH = ROOT / "bench"
PEER_VENV = ROOT / "var" / "peer-venv"

# script, its tiny arguments, lines its output must have (its figures)
TINY = {
    "admin": (
        ["--instances", "400", "--runs", "2"],
        ["seeded 400 instances", "instance list (default)", "dashboard pizza, 7 days", "p95",
         "trends pizza, by month (API)", "operations home /admin/", "search API ?q=<a name>"],
    ),
    "inbox": (
        ["--processes", "200", "--open", "40", "--roles", "5", "--requests", "3",
         "--decisions", "3", "--warm-up", "1"],
        ["GET /inbox/ (My roles, first page)", "POST decision (-> next task queued)", "p95="],
    ),
    "api": (
        ["--seconds", "1", "--rate", "10", "--conns", "2", "--no-wrk", "--instances", "100"],
        ["seeded 100 instances", "starts/s", "GET /api/processes/{id}/ at 10 req/s", "p99"],
    ),
    "batch": (["--n", "5"], ["first batch: HTTP 200", "same batch again: HTTP 200", "items/s"]),
    "engine": (
        ["--n", "4", "--cpu-runs", "2"],
        ["SQL statements per service step", "processes/s:", "start->completion latency p50"],
    ),
    "timers": (
        ["--timers", "100", "--due", "5", "--passes", "3", "--late", "2", "--backoff", "2"],
        ["pass with nothing due", "lateness of 2/2 escalations", "back-off 5 s"],
    ),
}  # fmt: skip


def database_url() -> str:
    return subprocess_env()["DATABASE_URL"]


def run_bench(
    script: str, *args: str, tmp_path: Path, timeout: float = 300, codes=(0,), **env
) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), *args],
        cwd=ROOT,
        env=subprocess_env(FLOWDESK_BENCH_VAR=tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode in codes, f"bench/{script}.py {' '.join(args)} failed:\n{output[-6000:]}"
    return done.stdout


def test_every_bench_is_smoke_tested():
    """A new bench gets its tiny size here (or in a test of its own below)."""
    tested = set(TINY) | {"salary", "storage", "soak", "peer"}
    helpers = {"common", "seeding", "soak_stack", "steps"}
    assert {p.stem for p in BENCH.glob("*.py")} - helpers == tested


@pytest.mark.parametrize("script", sorted(TINY))
def test_bench_runs_at_its_tiny_size(script, postgres, transactional_db, tmp_path):
    args, figures = TINY[script]
    out = run_bench(script, *args, "--keep-database", "--database-url", database_url(),
                    tmp_path=tmp_path)  # fmt: skip
    missing = [line for line in figures if line not in out]
    assert not missing, f"bench/{script}.py did not print {missing}:\n{out[-4000:]}"


def test_salary_then_storage(postgres, transactional_db, tmp_path):
    out = run_bench("salary", "--n", "3", "--workers", "2", "--latency", "5",
                    "--database-url", database_url(), tmp_path=tmp_path)  # fmt: skip
    assert "throughput:" in out and "simulator answer time p50" in out, out
    out = run_bench("storage", "--database-url", database_url(), tmp_path=tmp_path)
    assert "events per case:" in out and "all three tables per case:" in out, out


def test_soak_runs_its_chaos_and_reports(postgres, transactional_db, tmp_path):
    need(shutil.which("redis-server") is not None, "needs redis-server (the soak runs its own)")
    out = run_bench(
        "soak", "--minutes", "0.25", "--rate", "20", "--workers", "2", "--drain", "2",
        "--kill-every", "3,5", "--outage", "2", "--reenqueue-after", "3",
        "--keep-database", "--database-url", database_url(), tmp_path=tmp_path,
        codes=(0, 1),  # 1: it finished and found an invariant broken (its RESULT line says which)
    )  # fmt: skip
    # (which chaos actions fit in its 15 s depends on the machine: not asserted)
    for line in ("chaos:", "processes started", "effects:", "verify_history:", "RESULT:"):
        assert line in out, f"the soak did not print {line!r}:\n{out[-4000:]}"


def test_peer_runs_both_sides(postgres, transactional_db, tmp_path):
    """Viewflow's side runs from its own venv (`make test` makes it: bench/peer.py --setup-venv)
    on a database of its own beside the test database."""
    need((PEER_VENV / "bin" / "python").exists(), f"needs the peer's venv at {PEER_VENV}")
    url = database_url()
    base, name = url.rsplit("/", 1)
    viewflow_db = f"{name}_viewflow"
    try:
        out = run_bench(
            "peer", "--n", "3", "--rounds", "1", "--shapes", "inline", "--vf-db", viewflow_db,
            "--vfenv", str(PEER_VENV), "--database-url", url, "--keep-database",
            "--redis-url", os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "--flowdesk-args", "--cpu-runs 2", tmp_path=tmp_path, FLOWDESK_BENCH_PG=base,
        )  # fmt: skip
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{viewflow_db}" WITH (FORCE)')
    assert "Viewflow" in out and "ratio Flowdesk/Viewflow" in out, out


def test_the_seeding_stops_at_a_not_null_column_it_does_not_fill(postgres, db):
    """The seeding is built from the models' fields: a NOT NULL column without a default that it
    gives no value stops it with the column's name (here ``seq``, left out on purpose)."""
    import importlib.util

    from processes.models import ProcessEvent

    spec = importlib.util.spec_from_file_location("bench_seeding", BENCH / "seeding.py")
    seeding = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = seeding  # (its dataclass looks itself up there)
    spec.loader.exec_module(seeding)
    with pytest.raises(seeding.SeedingError, match=r"ProcessEvent\.seq .*NOT NULL"):
        seeding.insert_select(ProcessEvent, {"process": "p.id", "type": "'x'"}, "FROM p")
    statement = seeding.insert_select(
        ProcessEvent,
        {"process": "p.id", "seq": "1", "type": "'x'", "actor_type": "'system'"},
        "FROM p",
    )
    # every other column from its field: defaults as literals, nullable ones left out
    assert statement.startswith(
        "INSERT INTO processes_processevent "
        "(process_id, seq, type, task_name, actor_type, actor_label, created_at, data)\n"
    )
