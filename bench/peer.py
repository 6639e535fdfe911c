"""Flowdesk against its Django peer, Viewflow 2.4, side by side (run by hand, never in the suite).

    .venv/bin/python bench/peer.py --setup            # once: the peer's venv and database
    .venv/bin/python bench/peer.py --n 2000 --rounds 2
    .venv/bin/python bench/peer.py --n 2000 --rounds 2 --shapes service
    .venv/bin/python bench/peer.py --n 3 --rounds 1 --shapes inline \
        --flowdesk-args "--cpu-runs 2"               # the smoke test's size

Runs the shared peer harness (``../shared/peer``, its README: ``SalaryFlow`` = start -> split ->
salary_base ‖ bonus -> join -> finalize -> end, two OS processes, ``run_parallel.sh``) and
Flowdesk's ``bench/engine.py`` on the same shape one after the other, ``--rounds`` times, and
prints every rate and the ratio Flowdesk / Viewflow of each Flowdesk shape (``--shapes``):

- ``inline``: the four steps are inline pure-compute steps, as the peer's are ``Function``
  nodes (the process runs to its end in its start transaction; every step one audited event);
- ``mixed``: ``salary_base ‖ bonus`` (left ‖ right) are service steps, queued, leased, committed
  and audited by a real django-q2 cluster, the join and the final step inline;
- ``service``: all four are service steps on the cluster (eager dispatch chains the join and the
  final step).

Flowdesk starts its processes from ``--producers`` OS processes (default 2, as the peer's two).
Only the ratio of runs made in the same script means anything on a shared machine: absolute
figures move by ±40% with what else runs. ``--flowdesk-args`` passes more options to
bench/engine.py (e.g. ``--no-eager`` to measure without eager dispatch).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import PG, ROOT, var_dir

PEER_PACKAGES = ["django-viewflow==2.4.0", "django>=5.2,<6.1", "psycopg[binary]"]


def peer_dir(given: str | None) -> Path:
    for candidate in (given, ROOT.parent / "shared" / "peer", "/work/shared/peer"):
        if candidate and (Path(candidate) / "viewflow_bench" / "manage.py").exists():
            return Path(candidate)
    sys.exit("the peer harness (shared/peer/viewflow_bench) was not found: pass --peer-dir")


def ensure_database(name: str) -> None:
    from common import ensure_database as ensure

    ensure(f"{PG}/{name}")


def peer_env(args) -> dict:
    user = PG.rsplit("//", 1)[1].split("@")[0]
    return dict(
        os.environ,
        PY=str(Path(args.vfenv) / "bin" / "python"),
        VFENV=args.vfenv,
        VFBENCH_DB=args.vf_db,
        VFBENCH_USER=user,
        VFBENCH_PASSWORD=os.environ.get("VFBENCH_PASSWORD", ""),
        PYTHONDONTWRITEBYTECODE="1",  # the shared harness is read-only
        DJANGO_SETTINGS_MODULE="project.settings",  # the harness's, not ours
    )


def setup_venv(vfenv: str) -> None:
    """The peer's venv with the packages its README names (`make test` makes it once: the
    suite's smoke test runs this bench)."""
    py = Path(vfenv) / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", vfenv], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)


def setup_database(args) -> None:
    """The peer's database, created and migrated (a no-op when it is)."""
    ensure_database(args.vf_db)
    done = subprocess.run(
        [str(Path(args.vfenv) / "bin" / "python"), "manage.py", "migrate", "-v0"],
        cwd=peer_dir(args.peer_dir) / "viewflow_bench",
        env=peer_env(args),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"the peer's migrate failed:\n{done.stdout}{done.stderr}")


def run_viewflow(args, out: Path) -> float:
    import psycopg

    with psycopg.connect(f"{PG}/{args.vf_db}", autocommit=True) as conn:
        conn.execute(
            "TRUNCATE viewflow_task_previous, viewflow_task, viewflow_process "
            "RESTART IDENTITY CASCADE"
        )
        conn.execute("CHECKPOINT")  # as bench/engine.py does before its timed phase
    script = peer_dir(args.peer_dir) / "viewflow_bench" / "run_parallel.sh"
    done = subprocess.run(
        ["bash", str(script), str(args.n), str(out)],
        env=peer_env(args),
        check=True,
        capture_output=True,
        text=True,
    )
    (out / "stdout.txt").write_text(done.stdout + done.stderr)
    combined = re.search(r"combined processes/s: ([0-9.]+)", done.stdout)
    if not combined or "ok=True" not in done.stdout:
        sys.exit(f"the Viewflow run failed or did not check out:\n{done.stdout}\n{done.stderr}")
    return float(combined.group(1))


def run_flowdesk(args, out: Path, shape: str) -> tuple[float, str]:
    root = Path(args.flowdesk_root or ROOT)
    cmd = [
        sys.executable, str(root / "bench" / "engine.py"), "--broker", "redis", "--n", str(args.n),
        "--database-url", args.database_url, "--redis-url", args.redis_url,
        *shlex.split(args.flowdesk_args),
    ]  # fmt: skip
    if args.keep_database:
        cmd.append("--keep-database")
    if not args.flowdesk_root:  # an older checkout knows neither option (it runs "service")
        cmd += ["--shape", shape, "--producers", str(args.producers)]
    env = dict(os.environ)
    env.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 50)
    done = subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True, text=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stdout.txt").write_text(done.stdout + done.stderr)
    rate = re.search(r"processes/s: ([0-9.]+)", done.stdout)
    if not rate:
        sys.exit(f"bench/engine.py printed no rate:\n{done.stdout}\n{done.stderr}")
    return float(rate.group(1)), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=2000, help="processes per run (per OS process for Viewflow)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--shapes", default="inline,mixed,service", help="Flowdesk shapes, comma-separated"
    )
    parser.add_argument("--producers", type=int, default=2, help="Flowdesk's starting processes")
    parser.add_argument("--peer-dir", default=None)
    parser.add_argument("--vfenv", default=os.environ.get("VFENV", str(ROOT / "var" / "peer-venv")))
    parser.add_argument("--vf-db", default="flowdesk_peer_viewflow")
    parser.add_argument(
        "--database-url",
        default=f"{PG}/flowdesk_bench_engine",
        help="Flowdesk's database (bench/engine.py drops and creates it)",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="bench/engine.py uses it as it is"
    )
    parser.add_argument("--fd-db", help="Flowdesk's database name on FLOWDESK_BENCH_PG (old)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--flowdesk-args", default="", help="more options for bench/engine.py")
    parser.add_argument(
        "--flowdesk-root", default=None, help="another checkout's bench/engine.py (a baseline)"
    )
    parser.add_argument("--setup", action="store_true", help="create the peer's venv and database")
    parser.add_argument("--setup-venv", action="store_true", help="create the peer's venv only")
    args = parser.parse_args()  # fmt: skip
    if args.fd_db:
        args.database_url = f"{PG}/{args.fd_db}"
    if args.setup or args.setup_venv:
        setup_venv(args.vfenv)
        if args.setup:
            setup_database(args)
        return
    if not (Path(args.vfenv) / "bin" / "python").exists():
        sys.exit(f"no peer venv at {args.vfenv}: run bench/peer.py --setup first")
    setup_database(args)
    shapes = [x for x in args.shapes.split(",") if x]
    unknown = set(shapes) - {"inline", "mixed", "service"}
    if unknown or not shapes:
        sys.exit(f"--shapes: choose from inline, mixed, service (not {', '.join(unknown)})")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = var_dir() / f"peer-{stamp}"
    viewflow: list[float] = []
    flowdesk: dict[str, list[float]] = {shape: [] for shape in shapes}
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}: Viewflow 2.4, 2 OS processes x {args.n} ...", flush=True)
        viewflow.append(run_viewflow(args, out / f"viewflow-{round_}"))
        print(f"  Viewflow {viewflow[-1]:.1f} processes/s", flush=True)
        for shape in shapes:
            print(f"round {round_}: Flowdesk bench/engine.py --shape {shape} --n {args.n} ...")
            rate, text = run_flowdesk(args, out / f"flowdesk-{shape}-{round_}", shape)
            flowdesk[shape].append(rate)
            for line in text.splitlines():
                if line.startswith(
                    ("start of", "SQL statements", "commits", "worker CPU", "per process",
                     "processes/s", "CPU per process")
                ):  # fmt: skip
                    print(f"  {line}")
            print(
                f"  Flowdesk ({shape}) {rate:.1f} processes/s; "
                f"ratio this round {rate / viewflow[-1]:.2f}x",
                flush=True,
            )
    ratios = {
        shape: round(statistics.mean(rates) / statistics.mean(viewflow), 2)
        for shape, rates in flowdesk.items()
    }
    summary = {"n": args.n, "viewflow": viewflow, "flowdesk": flowdesk, "ratio": ratios}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"Viewflow {' / '.join(f'{x:.1f}' for x in viewflow)} processes/s")
    for shape, rates in flowdesk.items():
        print(
            f"Flowdesk {shape:7s} {' / '.join(f'{x:.1f}' for x in rates)} processes/s; "
            f"ratio Flowdesk/Viewflow {ratios[shape]:.2f}x"
        )
    print(f"(results in {out})")


if __name__ == "__main__":
    main()
