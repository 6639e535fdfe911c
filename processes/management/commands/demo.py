"""``manage.py demo [--serve]``: demo users, reference definitions and sample processes.

With ``--serve`` it also runs the web server (with the simulators of the accounting and bonus
systems), a worker and the simulated pizza kitchen (``manage.py kitchen``), then brings the
sample salary processes into their demo states: one paid, one rejected, two waiting for their
manager's approval, one failed with its SMS in the console. The kitchen and the courier service
answer the pizza orders' external tasks with the seed's events, so the deliveries reach the
courier's inbox. The story it prints is read from the database as it is then.
"""

import contextlib
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from processes import authority, engine
from processes.errors import EngineError
from processes.events import Actor
from processes.models import (
    ProcessDefinition,
    ProcessInstance,
    ProcessState,
    TaskInstance,
    TaskState,
)

# username -> (password, roles, is_staff, what they are)
DEMO_USERS = {
    "admin": ("admin", [], True, "administrator, gets the incident SMS"),
    "alice": ("alice", ["managers"], False, "manager of the Sales team (odd employee ids)"),
    "bob": ("bob", ["managers"], False, "manager of the Engineering team (even employee ids)"),
    "diana": ("diana", ["directors"], False, "director: overdue approvals escalate to her"),
    "courier": ("courier", ["delivery_executive"], False, "delivers pizzas"),
}
KITCHEN_USER = "kitchen"  # the simulated kitchen's API login (a token, no password)
ADMIN_PHONE = "+33612345678"

# business key -> (employee, period, what the demo does with it)
SALARY_PROCESSES = {
    "E001-2026-10": ("E001", "2026-10", "approve"),
    "E002-2026-10": ("E002", "2026-10", "reject"),
    "E003-2026-11": ("E003", "2026-11", "wait"),
    "E004-2026-11": ("E004", "2026-11", "wait"),
    "E013-2026-11": ("E013", "2026-11", "fail"),  # the bonus system has no plan for E013
}


def ensure_users() -> None:
    User = get_user_model()
    for username, (password, roles, staff, _) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        user.is_staff = user.is_superuser = staff
        user.email = f"{username}@example.com"
        user.save()
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
    ensure_kitchen()
    admin = User.objects.get(username="admin")
    if not hasattr(admin, "alert_recipient"):  # (a phone set since is kept)
        call_command("alert_recipient", "admin", ADMIN_PHONE, stdout=io.StringIO())


def ensure_kitchen() -> None:
    """The kitchen's API user: it may work the pizza processes (operate) and has a token."""
    from guardian.shortcuts import assign_perm
    from rest_framework.authtoken.models import Token

    kitchen, created = get_user_model().objects.get_or_create(username=KITCHEN_USER)
    if created:
        kitchen.set_unusable_password()
        kitchen.save()
    pizza = ProcessDefinition.objects.filter(key="pizza").order_by("-version").first()
    if pizza is not None and not authority.has_definition_perm(kitchen, authority.OPERATE, "pizza"):
        assign_perm(authority.OPERATE, kitchen, pizza)
    Token.objects.get_or_create(user=kitchen)


def ensure_demo_processes() -> None:
    actor = Actor.system("demo")
    if not ProcessInstance.objects.filter(definition_key="pizza").exists():
        for n in range(1, 4):
            engine.process_start(
                definition_key="pizza", business_key=f"ORDER-00{n}", input={}, actor=actor
            )


def start_salary_processes() -> list[ProcessInstance]:
    actor = Actor.system("demo")
    started = []
    for business_key, (employee_id, period, _) in SALARY_PROCESSES.items():
        existing = ProcessInstance.objects.filter(
            definition_key="salary", business_key=business_key
        ).first()
        if existing is None:
            existing = engine.process_start(
                definition_key="salary",
                business_key=business_key,
                input={"employee_id": employee_id, "period": period},
                actor=actor,
            ).process
        if existing is not None:  # (None: that case ran and was archived)
            started.append(existing)
    return started


def decide_salary_processes(timeout: float = 90, out=None) -> None:
    """Wait for the worker to reach the approvals, then approve one and reject another."""
    User = get_user_model()
    deadline = time.monotonic() + timeout
    pending = {k: v for k, v in SALARY_PROCESSES.items() if v[2] in ("approve", "reject")}
    while pending and time.monotonic() < deadline:
        for business_key, (_, _, action) in list(pending.items()):
            process = ProcessInstance.objects.filter(
                definition_key="salary", business_key=business_key
            ).first()
            if process is None:
                pending.pop(business_key)
                continue
            approval = process.tasks.filter(name="approve_bonus").first()
            if approval is None or approval.state in (TaskState.COMPLETED, TaskState.SKIPPED):
                pending.pop(business_key)
                continue
            if approval.state != TaskState.SCHEDULED:
                continue
            manager = approval.assignee or User.objects.get(username="alice")
            try:
                engine.task_decide(
                    task_id=approval.pk,
                    actor=Actor.for_user(manager),
                    decision=action,
                    comment="demo: " + ("well done" if action == "approve" else "not this time"),
                )
            except EngineError as exc:
                if out:
                    out.write(f"  {business_key}: {exc.message}\n")
            pending.pop(business_key)
            if out:
                out.write(f"  {business_key}: {manager.username} chose {action}\n")
        time.sleep(0.5)
    if pending and out:
        out.write(f"  still calculating: {', '.join(pending)} (the worker will get there)\n")


def wait_for_incident(timeout: float) -> None:
    """Until the failing cases have failed (their SMS printed), so the story comes after them.

    Only a case still calculating is waited for: after a restart it has long failed, or an
    operator has repaired it, and the story is printed at once.
    """
    failing = [k for k, v in SALARY_PROCESSES.items() if v[2] == "fail"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calculating = ProcessInstance.objects.filter(
            definition_key="salary",
            business_key__in=failing,
            state=ProcessState.RUNNING,
            tasks__name="bonus",
            tasks__state__in=(TaskState.PENDING, TaskState.SCHEDULED, TaskState.RUNNING),
        )
        if not calculating.exists():
            time.sleep(0.5)  # the SMS is printed by the worker just after the commit
            return
        time.sleep(0.5)


def _login(username: str) -> str:
    return f"{username} ({username}/{username})" if username in DEMO_USERS else username


def story(base_url: str) -> list[str]:
    """What waits for whom now, read from the database (never a text written in advance)."""
    lines = []
    open_tasks = TaskInstance.objects.filter(state=TaskState.SCHEDULED, type="HUMAN")
    approvals: dict[str, list[str]] = {}
    for task in open_tasks.filter(process__definition_key="salary").select_related(
        "process", "assignee"
    ):
        holder = task.assignee.get_username() if task.assignee_id else task.candidate_role
        approvals.setdefault(holder, []).append(task.process.business_key)
    if approvals:
        waiting = "; ".join(
            f"{_login(holder)} has {', '.join(sorted(keys))}"
            for holder, keys in sorted(approvals.items())
        )
        lines.append(f"Bonus approvals waiting: {waiting}: log in at {base_url}/inbox/ and decide.")
    deliveries = open_tasks.filter(process__definition_key="pizza", name="deliver_food")
    count = deliveries.count()
    if count:
        keys = ", ".join(sorted(deliveries.values_list("process__business_key", flat=True)))
        lines.append(
            f"Pizza deliveries waiting: {_login('courier')} has {count} ({keys}): confirm each "
            f"in {base_url}/inbox/."
        )
    cooking = (
        ProcessInstance.objects.filter(definition_key="pizza", state=ProcessState.RUNNING)
        .exclude(pk__in=deliveries.values("process_id"))
        .count()
    )
    if cooking:
        lines.append(
            f"In the kitchen: {cooking} pizza order{'s' if cooking != 1 else ''} (the simulated "
            "kitchen and courier service send the seed's events; they reach the courier soon)."
        )
    for process in ProcessInstance.objects.filter(state=ProcessState.FAILED).order_by(
        "business_key"
    )[:5]:
        failed = process.tasks.filter(state=TaskState.FAILED).first()
        why = f": {failed.name} failed ({failed.last_error[:120]})" if failed else ""
        lines.append(
            f"Incident: {process.business_key}{why}. Log in as admin/admin, "
            f"{base_url}/admin/ → the incident → Retry… or Skip… with the values to set."
        )
    done = ProcessInstance.objects.filter(state=ProcessState.COMPLETED).count()
    if done:
        lines.append(f"Completed so far: {done} case{'s' if done != 1 else ''}.")
    return lines or ["Nothing waits for anyone: start a case from the admin or the API."]


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def check_port_free(addr: str) -> None:
    """Refuse to start when the address is taken: the story would run against the other server."""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"demo address {addr!r} is not HOST:PORT (e.g. 127.0.0.1:8000)")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            raise CommandError(
                f"{addr} is already in use (another demo?): stop it, or choose another port with "
                f"FLOWDESK_DEMO_ADDR=127.0.0.1:8001 make demo"
            ) from None


class Command(BaseCommand):
    help = "Set up the demo (migrate, definitions, users, sample processes); --serve also runs it."

    def add_arguments(self, parser):
        parser.add_argument("--serve", action="store_true", help="run web server and worker")
        parser.add_argument(
            "--addr", default=os.environ.get("FLOWDESK_DEMO_ADDR", "127.0.0.1:8000")
        )

    def handle(self, *args, serve=False, addr="127.0.0.1:8000", **options):
        if serve:
            check_port_free(addr)
        call_command("migrate", verbosity=0)
        call_command("setup_flowdesk", stdout=self.stdout)  # with the SMS outbox's schedule
        ensure_users()
        ensure_demo_processes()
        self.stdout.write(self.style.SUCCESS("demo data ready"))
        if not serve:
            start_salary_processes()
            self.stdout.write(
                "salary processes started: they run when the workers (manage.py workers) and the "
                "simulators (FLOWDESK_SIMULATORS=1 manage.py runserver) are up"
            )
            return
        self.serve(addr)

    def serve(self, addr: str) -> None:
        base_url = f"http://{addr}"
        env = dict(os.environ, FLOWDESK_BASE_URL=base_url)
        env.setdefault("FLOWDESK_SIMULATORS", "1")  # the salary steps call the simulators here
        env.setdefault("FLOWDESK_ACCOUNTING_URL", f"{base_url}/simulators/accounting")
        env.setdefault("FLOWDESK_BONUS_URL", f"{base_url}/simulators/bonus")
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("FLOWDESK_SHUTDOWN_GRACE", "10")
        env.setdefault("FLOWDESK_DASHBOARD_KEY", "salary")  # the dashboard opens on salaries
        env.setdefault("FLOWDESK_LOG_LEVEL", "WARNING")  # the story's SMS, not library INFO lines
        logging.getLogger().setLevel(env["FLOWDESK_LOG_LEVEL"].upper())
        logging.getLogger("django-q").setLevel(env["FLOWDESK_LOG_LEVEL"].upper())
        env["FLOWDESK_BIND"] = addr
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        if not (settings.STATIC_ROOT / "staticfiles.json").exists():
            call_command("collectstatic", interactive=False, verbosity=0)
        # SIGTERM (e.g. from `timeout` or a supervisor) stops the children like Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        # The worker supervisor runs qcluster and restarts it if it stalls or dies.
        worker = subprocess.Popen([*manage, "workers"], env=env, start_new_session=True)
        # The production server, with WhiteNoise serving the collected static files.
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"]
        web = subprocess.Popen(gunicorn, env=env, cwd=settings.BASE_DIR)
        kitchen = None
        try:
            if not self.prepare_salary_processes(base_url, web):
                raise CommandError(f"the web server at {addr} did not start (see its lines above)")
            # The pizza kitchen and courier service: the seed's events, over the API.
            kitchen = subprocess.Popen(
                [*manage, "kitchen", "--base-url", base_url], env=env, start_new_session=True
            )
            time.sleep(3)  # its first round, so the story shows where the orders are
            self.stdout.write(self.banner(base_url))
            while web.poll() is None and worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C or SIGTERM (``timeout`` signals the whole group as well) must not
            # cut the clean-up short and leave the worker running.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if kitchen is not None:
                kitchen.terminate()
            web.terminate()
            # The supervisor stops qcluster (SIGKILL after FLOWDESK_SHUTDOWN_GRACE, #346).
            try:
                worker.terminate()
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                web.wait(timeout=10)

    def banner(self, base_url: str) -> str:
        """The story as it stands: who has what waiting, what failed, where to look."""
        steps = [*story(base_url), f"API: {base_url}/api/ (links), {base_url}/api/docs/ (Swagger)"]
        return (
            self.style.SUCCESS(
                f"\nFlowdesk demo at {base_url}/  (another port: FLOWDESK_DEMO_ADDR)\n"
            )
            + "".join(f"  {n}. {line}\n" for n, line in enumerate(steps, start=1))
            + "  Logins: "
            + ", ".join(f"{u}/{p} ({what})" for u, (p, _, _, what) in DEMO_USERS.items())
            + '\n  Break the bonus system: make manage CMD="simulator bonus down" '
            + '(repair: make manage CMD="simulator bonus up")\n'
            + "  Ctrl-C stops the server, the worker and the kitchen.\n"
        )

    def prepare_salary_processes(self, base_url: str, web) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and web.poll() is None:
            try:
                if httpx.get(f"{base_url}/simulators/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            return False
        if web.poll() is not None:
            return False
        self.stdout.write("salary processes: starting and bringing them to their demo states...")
        start_salary_processes()
        decide_salary_processes(out=self.stdout)
        wait_for_incident(timeout=60)  # only while a failing case still calculates
        return True
