"""Shared fixtures. Real parts everywhere: the test database is the one DATABASE_URL names."""

import json
from pathlib import Path

import pytest

from processes import engine
from processes.events import Actor

DEFINITIONS = Path(__file__).resolve().parent.parent / "processes" / "definitions"


@pytest.fixture(autouse=True)
def fresh_subscription_cache():
    """Events out keeps active subscriptions in memory for a few seconds: a test's rolled-back
    subscriptions must not reach the next test."""
    from integrations.models import _active_cache

    _active_cache.clear()
    yield
    _active_cache.clear()


@pytest.fixture(autouse=True)
def site_language():
    """A request through the test client activates its reader's language in this thread (the
    locale middleware, as on a server's worker thread); the next test starts in the site's."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture
def system_actor():
    return Actor.system("test")


@pytest.fixture
def import_definition(db, system_actor):
    """Import and publish a definition dict (or a reference file name such as "pizza.json")."""

    def _import(data, key=None):
        if isinstance(data, str):
            data = json.loads((DEFINITIONS / data).read_text())
        definition, _ = engine.definition_import(data=data, key=key, actor=system_actor)
        return definition

    return _import


@pytest.fixture
def pizza(import_definition):
    return import_definition("pizza.json", key="pizza")


def task_states(process):
    return {t.name: t.state for t in process.tasks.order_by("id")}


# --- real parts: PostgreSQL, Redis, chromium, a qcluster subprocess -------------------------------

import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from django.db import connection  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("FLOWDESK_REQUIRE_ALL") == "1"

# --- parallel workers (pytest-xdist, `make test`): each one its own database and Redis --------
#
# pytest-django gives worker gwN the database test_<name>_gwN, and subprocess_env() hands the
# subprocesses the database this process uses. Redis gets the same separation here: worker gwN
# uses database number base + N of FLOWDESK_TEST_REDIS_URL (the tests and every subprocess they
# start read it from the environment), so no queue, lane or stream key meets another worker's.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... or "" (no xdist)
# Tests that start a worker supervisor (the `supervisor` fixture: chaos, stalls, SIGTERM) run in
# xdist groups, one after the other on one worker each (`--dist loadgroup`, scripts/test.sh): the
# supervisor's own tests and its chaos runs in "supervision", the other features' clusters (hosts,
# pgbouncer, timers, events out, compensation, watchdog) in "supervision-b". Two groups, so the
# suite's wall clock is not their sum; each group's tests still never run beside one another.
SUPERVISION_GROUP = "supervision"
SUPERVISION_GROUP_B = "supervision-b"
SUPERVISION_GROUPS = (SUPERVISION_GROUP, SUPERVISION_GROUP_B)
SUPERVISION_B_MODULES = {
    "tests/operations/test_hosts.py",
    "tests/operations/test_pgbouncer.py",
    "tests/processes/test_fleet.py",
    "tests/processes/test_e2e_waits.py",
    "tests/processes/test_schedules_workers.py",
    "tests/processes/test_e2e_compensation.py",
    "tests/integrations/test_events_out.py",
    "tests/integrations/test_watchdog.py",
}


def supervision_group_of(item) -> str:
    """The supervision group of a test that starts clusters (by its module, see above)."""
    path = item.nodeid.split("::", 1)[0]
    return SUPERVISION_GROUP_B if path in SUPERVISION_B_MODULES else SUPERVISION_GROUP


def _redis_url_of_this_worker(url: str, worker: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    number = base + int(worker.removeprefix("gw"))
    if number > 15:
        raise pytest.UsageError(
            f"worker {worker} would use Redis database {number} ({url} + {worker}): Redis has "
            "16 by default; run fewer workers or start from a lower FLOWDESK_TEST_REDIS_URL"
        )
    return urlunsplit(parts._replace(path=f"/{number}"))


if XDIST_WORKER:
    os.environ["FLOWDESK_TEST_REDIS_URL"] = _redis_url_of_this_worker(
        os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), XDIST_WORKER
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(config, items):
    _unique_node_ids(items)
    for item in items:
        marked = item.get_closest_marker("xdist_group")
        if "supervisor" in getattr(item, "fixturenames", ()) or (
            marked is not None and marked.args and marked.args[0] in SUPERVISION_GROUPS
        ):
            item.add_marker(pytest.mark.xdist_group(supervision_group_of(item)))
            item.add_marker(pytest.mark.supervision)  # `pytest -m supervision`: the groups alone
        elif _uses_a_shared_fixture(item):
            # its module's tests share that fixture (a server): one worker, one setup
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        for item in items:
            _name_the_group(item)


def _name_the_group(item) -> None:
    """xdist learns a test's group from its node id, ``<id>@<group>``, which its worker sets as
    ``item._nodeid``; pytest 9 derives the node id from ``item._id`` and ignores that, so every
    group would be scattered over the workers. Set it where pytest 9 reads it."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return
    group = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
    suffix = f"@{group}"
    if item.nodeid.endswith(suffix):
        return
    if hasattr(item, "_id"):
        item._id = type(item._id).parse(item.nodeid + suffix)
    else:
        item._nodeid = item.nodeid + suffix
    if not item.nodeid.endswith(suffix):
        raise pytest.UsageError(f"cannot put {item.nodeid} in xdist group {group}")


def _uses_a_shared_fixture(item) -> bool:
    """True when the test uses a fixture of ours set up once per module, class or package."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(
        definition.scope in ("class", "module", "package") and definition.baseid  # not a plugin's
        for name in getattr(item, "fixturenames", ())
        for definition in definitions.get(name, ())
    )


def _unique_node_ids(items) -> None:
    """One node id per test: xdist hands tests to its workers by node id, so two tests sharing
    one would run once. pytest 9 builds a function's id from its original name and parameters;
    schemathesis names each API operation's test ``test_fuzz...[POST /api/...]`` without
    parameters, so all of them got the same id. Those take their full name as id."""
    import collections

    counts = collections.Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.name != item.nodeid.rsplit("::", 1)[-1]:
            item._id = item.parent.id.child(item.name)
    repeated = [
        nodeid for nodeid, n in collections.Counter(i.nodeid for i in items).items() if n > 1
    ]
    if repeated:
        raise pytest.UsageError(f"tests sharing a node id (xdist would run one): {repeated}")
    import re

    unstable = [i.nodeid for i in items if re.search(r" at 0x[0-9a-f]+", i.nodeid)]
    if unstable:  # each worker would collect another id, and xdist stops the whole run
        raise pytest.UsageError(f"node ids that name a memory address: {unstable[:3]}")


# The supervision groups' tests measure time (a stall after 6 s without a beat, recovery within
# 30 s of a kill): the other workers yield the CPU to them. A worker whose first test is not in
# a supervision group lowers its own priority, and so of every subprocess it starts (nice is
# inherited); the groups' workers keep theirs (xdist hands out the largest units first, one per
# worker, so each group is its worker's first).
WORKER_NICENESS = int(os.environ.get("FLOWDESK_TEST_WORKER_NICENESS", "10"))
_niceness_settled = False


def pytest_runtest_setup(item):
    global _niceness_settled
    if _niceness_settled or not XDIST_WORKER:
        return
    _niceness_settled = True
    group = item.get_closest_marker("xdist_group")
    if WORKER_NICENESS > 0 and (
        group is None or group.args[:1] not in [(g,) for g in SUPERVISION_GROUPS]
    ):
        os.nice(WORKER_NICENESS)


def need(condition: bool, reason: str) -> None:
    """Skip when a real part is missing; in CI (FLOWDESK_REQUIRE_ALL=1) fail instead."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"CI needs this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    need(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        need(False, f"needs Redis at {url}")
    return url


@pytest.fixture(scope="session")
def chromium_path():
    path = "/usr/bin/chromium"
    need(os.path.exists(path), "needs Debian's chromium at /usr/bin/chromium")
    return path


def subprocess_env(**extra) -> dict:
    """Environment for a subprocess that must use the test database (not the dev one)."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class QCluster:
    """A real ``manage.py qcluster`` subprocess on the test database."""

    def __init__(self, log_path: Path, **env):
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "QCluster":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=subprocess_env(**self.env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster (guard and workers): a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        # qcluster can hang on SIGTERM (django-q2 #346): give it a moment, then SIGKILL.
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def manage(self, *args: str, timeout: float = 60) -> str:
        """Run a manage.py command with this cluster's environment (same broker and queue)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=subprocess_env(**self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def clean_up(self) -> None:
        """After the test: SIGKILL whatever is left (a graceful stop costs the 10 s SIGTERM
        hang of #346 and proves nothing once the test is over)."""
        self.kill()
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture
def qcluster_factory(transactional_db, tmp_path):
    """Start real qcluster subprocesses: ``qcluster_factory(broker="orm"|"redis", **env)``."""
    clusters: list[QCluster] = []
    name = f"t{uuid.uuid4().hex[:8]}"

    def start(broker: str = "orm", **env) -> QCluster:
        env.setdefault("FLOWDESK_Q_NAME", name)
        env.setdefault("FLOWDESK_Q_POLL", "0.1")
        if broker == "redis":
            env.setdefault(
                "FLOWDESK_REDIS_URL",
                os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            )
        else:
            env["FLOWDESK_REDIS_URL"] = ""
        cluster = QCluster(tmp_path / f"qcluster-{len(clusters)}.log", **env).start()
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.clean_up()


def _host_slowdown() -> float:
    """How many times slower than a usual machine this one runs Python: the CPU time of a fixed
    loop against 0.03 s (``FLOWDESK_TEST_SLOWDOWN`` sets it). CPU time, so other work on the
    machine does not count; never below 1. Seen on a throttled 2-core VM: 3.1."""
    given = os.environ.get("FLOWDESK_TEST_SLOWDOWN")
    if given:
        return max(1.0, float(given))
    began = time.process_time()
    sum(range(3_000_000))
    return max(1.0, (time.process_time() - began) / 0.03)


# The cluster tests' time bounds (a heartbeat back, a recovery after a kill) are what a usual
# machine needs, times this: on a host three times slower, processes start three times slower.
SLOWDOWN = _host_slowdown()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Until ``predicate()`` is true, for ``timeout`` seconds on a usual machine (times
    ``SLOWDOWN`` here)."""
    timeout *= SLOWDOWN
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if not predicate():
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ = shutil  # kept for helpers that look up executables


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def browser_page(chromium_path, tmp_path, monkeypatch):
    """A Playwright page in Debian's headless chromium (never a downloaded browser)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are
    # still synchronous, so tell Django not to refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=BROWSER_ARGS,
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # While that loop runs, asgiref's Local keeps Django's connections per context, not
            # per thread: the ones the test opened here are not the ones closed at teardown.
            # Close them now, or the test database can't be dropped ("1 other session").
            connections.close_all()


# --- the append-only event log and the test database's flush --------------------------------------


def _allow_flush_of_the_event_log() -> None:
    """Django empties a transactional test's database with TRUNCATE, which the event log refuses;
    its owner may purge it on purpose (``SET LOCAL flowdesk.purge = 'on'``, inside the flush's
    own transaction), which is what a test database's flush is."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    if getattr(DatabaseOperations.sql_flush, "_flowdesk", False):
        return
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        return ["SET LOCAL flowdesk.purge = 'on'", *statements] if statements else statements

    sql_flush._flowdesk = True
    DatabaseOperations.sql_flush = sql_flush


_allow_flush_of_the_event_log()


# --- a real worker supervisor (manage.py workers) and its qcluster tree ---------------------------

import contextlib  # noqa: E402
import re  # noqa: E402


class Supervisor:
    """A real ``manage.py workers`` subprocess on the test database, in its own session."""

    ROLE_LINES = {
        "worker": re.compile(r"ready for work at (\d+)"),
        "pusher": re.compile(r"pushing tasks at (\d+)"),
        "monitor": re.compile(r"monitoring at (\d+)"),
    }

    def __init__(self, log_path: Path, progress_dir: Path, **env):
        self.log_path = log_path
        self.progress_dir = progress_dir
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.groups: set[int] = set()  # every qcluster process group seen (for the clean-up)

    def start(self) -> "Supervisor":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "workers"],
            cwd=ROOT,
            env=subprocess_env(**self.env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def supervisor_id(self) -> str:
        return self.env["FLOWDESK_SUPERVISOR_ID"]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tree(self) -> dict:
        """The qcluster tree now: {"main", "sentinel", "pusher", "monitor": pid or None,
        "workers": [pids], "busy": [pids of workers running a step], "all": [every pid]}.

        django-q2 sets no process titles here (no setproctitle): main is the supervisor's child,
        the sentinel main's child; the sentinel's children say what they are in the log.
        """
        from processes.supervisor import process_table

        table = process_table()
        alive = {pid for pid, (_, _, state) in table.items() if state != "Z"}

        def children(pid):
            return sorted(c for c, (parent, _, _) in table.items() if parent == pid and c in alive)

        found = {"main": None, "sentinel": None, "pusher": None, "monitor": None}
        found.update(workers=[], busy=[], all=[])
        mains = children(self.proc.pid) if self.proc else []
        if not mains:
            return found
        found["main"] = mains[0]
        self.groups.add(mains[0])
        sentinels = children(mains[0])
        found["all"] = [mains[0], *sentinels]
        if not sentinels:
            return found
        found["sentinel"] = sentinels[0]
        kids = set(children(sentinels[0]))
        found["all"] += sorted(kids)
        said = {}
        for line in self.output().splitlines():
            for role, pattern in self.ROLE_LINES.items():
                match = pattern.search(line)
                if match:
                    said[int(match.group(1))] = role
        now = time.time()
        for pid in sorted(kids):
            role = said.get(pid)
            if role in ("pusher", "monitor"):
                found[role] = pid
            elif role == "worker":
                found["workers"].append(pid)
                with contextlib.suppress(OSError, ValueError, IndexError):
                    note = (self.progress_dir / str(pid)).read_bytes().split()
                    if float(note[0]) > now:
                        found["busy"].append(pid)
        return found

    def heartbeat(self):
        from processes.models import ClusterHeartbeat

        return ClusterHeartbeat.objects.filter(pk=self.supervisor_id).first()

    def wait_beating(self, timeout: float = 60) -> None:
        """Until a heartbeat has come back through the cluster."""

        def beating():
            row = self.heartbeat()
            return row is not None and row.returned_at is not None and row.state == "ok"

        wait_for(beating, timeout=timeout, message=f"a heartbeat back\n{self.output()[-3000:]}")

    def signal(self, signum: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the supervisor; then SIGKILL whatever is left of it and its trees."""
        if self.proc and self.proc.poll() is None:
            self.tree()  # remember the current tree's group
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()

    def clean_up(self) -> None:
        """After the test: SIGKILL the supervisor and every qcluster tree it ran, at once (its
        graceful stop is what the SIGTERM tests test; once a test is over it only costs time)."""
        if self.proc and self.proc.poll() is None:
            self.tree()  # remember the current tree's group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        if getattr(self, "log", None) and not self.log.closed:
            self.log.close()


@pytest.fixture
def supervisor(transactional_db, tmp_path, monkeypatch):
    """Start real worker supervisors: ``supervisor(broker="orm"|"redis", **env)``.

    The test process enqueues into the supervised cluster's queue (same name and broker), so
    steps started or decided here run there. Short heartbeat (1 s) and stall (6 s) by default.
    """
    from django_q.conf import Conf

    from processes import queue

    started: list[Supervisor] = []
    name = f"s{uuid.uuid4().hex[:8]}"

    def start(broker: str = "orm", **env) -> Supervisor:
        env.setdefault("FLOWDESK_Q_NAME", name)
        env.setdefault("FLOWDESK_SUPERVISOR_ID", f"{name}-{len(started)}")
        env.setdefault("FLOWDESK_Q_POLL", "0.1")
        env.setdefault("FLOWDESK_HEARTBEAT_SECONDS", "1")
        env.setdefault("FLOWDESK_STALL_SECONDS", "6")
        env.setdefault("FLOWDESK_SHUTDOWN_GRACE", "10")
        progress = tmp_path / f"progress-{len(started)}"
        env.setdefault("FLOWDESK_PROGRESS_DIR", str(progress))
        if broker == "redis":
            env.setdefault(
                "FLOWDESK_REDIS_URL",
                os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            )
            monkeypatch.setattr(Conf, "REDIS", env["FLOWDESK_REDIS_URL"])
            monkeypatch.setattr(Conf, "BROKER_CLASS", "processes.supervisor.RedisBroker")
        else:
            env["FLOWDESK_REDIS_URL"] = ""
            monkeypatch.setattr(Conf, "BROKER_CLASS", "processes.supervisor.OrmBroker")
        monkeypatch.setattr(Conf, "PREFIX", env["FLOWDESK_Q_NAME"])
        monkeypatch.setattr(Conf, "CLUSTER_NAME", env["FLOWDESK_Q_NAME"])
        queue._brokers.clear()
        sup = Supervisor(tmp_path / f"workers-{len(started)}.log", Path(progress), **env).start()
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.clean_up()
    queue._brokers.clear()


# --- notices queued by the hooks' listeners -------------------------------------------------------

INLINE_TASKS = (
    "integrations.listeners.deliver_alert",
    "tasks_inbox.notifications.task_escalated",
    "tasks_inbox.notifications.task_opened",
    "processes.worker.start_children",
    "processes.worker.cancel_children",
)


@pytest.fixture(autouse=True)
def notices_run_inline(monkeypatch):
    """In-process tests have no worker: the SMS and inbox notices that listeners queue as
    django-q2 tasks, and the start and cancellation of child processes that the engine queues,
    run at once (after the commit that queued them), as a worker would run them. Tests with a
    real cluster (e2e) run them through the broker; service steps and compensations are never
    run inline here."""
    from django.utils.module_loading import import_string

    from processes import queue

    real = queue.enqueue

    def enqueue(func, *args, **options):
        if func in INLINE_TASKS:
            import_string(func)(*args)
            return True
        return real(func, *args, **options)

    monkeypatch.setattr(queue, "enqueue", enqueue)


# --- the production web server: gunicorn + WhiteNoise on the test database ------------------------


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """``collectstatic`` as `make install` runs it (hashed names, compressed), once per session."""
    root = tmp_path_factory.mktemp("staticfiles")
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "FLOWDESK_STATIC_ROOT": str(root),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


class WebServer:
    """A real ``gunicorn -c config/gunicorn.conf.py`` (the production command) on a free port."""

    def __init__(self, log_path: Path, static_root: Path):
        self.log_path = log_path
        self.static_root = static_root
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WebServer":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = subprocess_env(
            # The project's settings; tests.settings only adds a fast password hasher, and keeps
            # the production static storage when FLOWDESK_SERVE_AS_PRODUCTION is set.
            DJANGO_SETTINGS_MODULE="tests.settings",
            FLOWDESK_SERVE_AS_PRODUCTION="1",
            FLOWDESK_STATIC_ROOT=self.static_root,
            FLOWDESK_BIND=self.url.removeprefix("http://"),
            FLOWDESK_BASE_URL=self.url,
            FLOWDESK_WEB_WORKERS="2",
            FLOWDESK_LOG_LEVEL="warning",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers():
            import httpx

            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(self.url + "/accounts/login/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=60, message=f"gunicorn at {self.url}")
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture
def web_server(transactional_db, collected_static, tmp_path):
    """gunicorn + WhiteNoise serving the test database (what production runs, not live_server)."""
    server = WebServer(tmp_path / "gunicorn.log", collected_static).start()
    yield server
    server.stop()


class AssetGuard:
    """Records every static asset, script, style, image or font a page could not load."""

    KINDS = {"stylesheet", "script", "image", "font", "media"}

    def __init__(self, page):
        self.failures: list[str] = []
        page.on("response", self._response)
        page.on("requestfailed", lambda r: self._failed(r, r.failure or "failed"))

    def _response(self, response):
        request = response.request
        if response.status >= 400 and (
            request.resource_type in self.KINDS or "/static/" in request.url
        ):
            self.failures.append(f"{response.status} {request.url}")

    def _failed(self, request, why):
        if "ERR_ABORTED" in why:
            return  # the page moved on before it arrived (a navigation cancels it): not missing
        if request.resource_type in self.KINDS or "/static/" in request.url:
            self.failures.append(f"{why} {request.url}")

    def check(self):
        assert not self.failures, "assets the pages could not load:\n" + "\n".join(self.failures)


@pytest.fixture
def asset_guard(browser_page):
    """Fails the test when any page it visited requested an asset that is not there."""
    guard = AssetGuard(browser_page)
    yield guard
    guard.check()


def record_steps(monkeypatch, record) -> None:
    """Steps handed to the queue, recorded (not sent): ``record(task_id, timeout)`` once per
    step, whether it is queued alone or in a batch's message."""
    from processes import queue

    monkeypatch.setattr(queue, "enqueue_step", lambda task_id, timeout: record(task_id, timeout))
    monkeypatch.setattr(
        queue, "enqueue_batch", lambda steps: [record(t, timeout) for t, timeout, _ in steps]
    )


# --- PgBouncer in transaction mode in front of the test PostgreSQL ------------------------------


class PgBouncer:
    """A real ``pgbouncer`` (Debian's package) on a free port of 127.0.0.1: its own ini and
    userlist in a directory of its own, ``auth_type = trust``, ``pool_mode = transaction``, every
    database passed through to the test PostgreSQL."""

    EXECUTABLE = "/usr/sbin/pgbouncer"

    def __init__(self, upstream_host: str, upstream_port: int):
        import tempfile

        self.upstream = (upstream_host or "127.0.0.1", int(upstream_port or 5432))
        self.port = free_port()
        # pgbouncer refuses to run as root: as root it is started with ``-u nobody``, which must
        # be able to read its files.
        self.directory = Path(tempfile.mkdtemp(prefix="flowdesk-pgbouncer-"))
        self.directory.chmod(0o755)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PgBouncer":
        host, port = self.upstream
        ini = self.directory / "pgbouncer.ini"
        userlist = self.directory / "userlist.txt"
        userlist.write_text('"postgres" ""\n')
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\n"
            "default_pool_size = 20\n"
            "admin_users = postgres\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        for path in (ini, userlist):
            path.chmod(0o644)
        self.log = open(self.directory / "pgbouncer.log", "ab")  # noqa: SIM115 - closed in stop()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [self.EXECUTABLE, *user, str(ini)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers():
            assert self.proc.poll() is None, self.output()
            try:
                self.stats("pgbouncer")
                return True
            except Exception:
                return False

        wait_for(answers, timeout=30, message=f"pgbouncer on port {self.port}\n{self.output()}")
        return self

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stats(self, database: str) -> dict:
        """Its ``SHOW STATS`` row for ``database`` (empty when nothing went there yet)."""
        import psycopg

        with psycopg.connect(self.url("pgbouncer"), autocommit=True, connect_timeout=2) as admin:
            cursor = admin.execute("SHOW STATS")
            columns = [c.name for c in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(columns, row, strict=True))
                if values["database"] == database:
                    return values
        return {}

    def output(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer():
    """A pgbouncer in transaction mode before the test PostgreSQL (skips without Debian's
    package; CI, ``FLOWDESK_REQUIRE_ALL=1``, fails instead: scripts/test.sh installs it)."""
    need(
        os.path.exists(PgBouncer.EXECUTABLE),
        f"needs Debian's pgbouncer at {PgBouncer.EXECUTABLE} (apt-get install pgbouncer)",
    )
    need(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")
    db = connection.settings_dict
    bouncer = PgBouncer(db["HOST"], db["PORT"]).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def through_pgbouncer(transactional_db, pgbouncer, monkeypatch):
    """This test's database connection, and every subprocess it starts (``subprocess_env``: the
    workers, gunicorn), go through ``pgbouncer`` with ``FLOWDESK_DB_POOLER=pgbouncer``'s
    settings (no prepared statements, no server-side cursors)."""
    from django.db import connections

    conn = connections["default"]
    conn.close()
    monkeypatch.setitem(conn.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(conn.settings_dict, "PORT", pgbouncer.port)
    monkeypatch.setitem(
        conn.settings_dict, "OPTIONS", {"server_side_binding": True, "prepare_threshold": None}
    )
    monkeypatch.setitem(conn.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    monkeypatch.setenv("FLOWDESK_DB_POOLER", "pgbouncer")
    monkeypatch.delenv("FLOWDESK_DB_PREPARE", raising=False)
    yield pgbouncer
    conn.close()  # the next connection (the flush) is a direct one again
