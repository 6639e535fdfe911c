"""``manage.py demo [--serve]``: demo users, reference definitions and sample processes.

With ``--serve`` it also runs the web server (with the simulators of the accounting and bonus
systems) and a worker, then brings the sample salary processes into their demo states: one paid,
one rejected, two waiting for their manager's approval, one failed with its SMS in the console.
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

from processes import engine
from processes.errors import EngineError
from processes.events import Actor
from processes.models import ProcessInstance, TaskState

# username -> (password, roles, is_staff, what they are)
DEMO_USERS = {
    "admin": ("admin", [], True, "administrator, gets the incident SMS"),
    "alice": ("alice", ["managers"], False, "manager of the Sales team (odd employee ids)"),
    "bob": ("bob", ["managers"], False, "manager of the Engineering team (even employee ids)"),
    "diana": ("diana", ["directors"], False, "director: overdue approvals escalate to her"),
    "courier": ("courier", ["delivery_executive"], False, "delivers pizzas"),
}
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
    admin = User.objects.get(username="admin")
    if not hasattr(admin, "alert_recipient"):  # (a phone set since is kept)
        call_command("alert_recipient", "admin", ADMIN_PHONE, stdout=io.StringIO())


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
    """Until E013 has failed (its SMS printed), so the banner comes after the story's events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        failed = [k for k, v in SALARY_PROCESSES.items() if v[2] == "fail"]
        states = ProcessInstance.objects.filter(
            definition_key="salary", business_key__in=failed
        ).values_list("state", flat=True)
        if states and all(state == "failed" for state in states):
            time.sleep(1)  # the SMS is printed by the worker just after the commit
            return
        time.sleep(0.5)


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
        try:
            if not self.prepare_salary_processes(base_url, web):
                raise CommandError(f"the web server at {addr} did not start (see its lines above)")
            self.stdout.write(self.banner(base_url))
            while web.poll() is None and worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
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
        """The story in three lines: who has what waiting, what failed, where to look."""
        waiting = {}
        for key in ("E003-2026-11", "E004-2026-11"):
            process = ProcessInstance.objects.filter(
                definition_key="salary", business_key=key
            ).first()
            approval = process and process.tasks.filter(name="approve_bonus").first()
            if approval and approval.assignee_id:
                waiting[approval.assignee.get_username()] = key
        who = ", ".join(f"{user} ({user}/{user}) has {key}" for user, key in waiting.items())
        return (
            self.style.SUCCESS(
                f"\nFlowdesk demo at {base_url}/  (another port: FLOWDESK_DEMO_ADDR)\n"
            )
            + f"  1. Waiting: {who or 'the approvals are still calculating'}: "
            + f"log in at {base_url}/inbox/ and approve the bonus.\n"
            + "  2. Failed: E013-2026-11 (the bonus system has no plan for E013; its SMS is above): "
            + f"log in as admin/admin, {base_url}/admin/ → the red banner → Skip… and set "
            + "the bonus (amount, currency, rating) with a reason.\n"
            + f"  3. API: {base_url}/api/docs/ (Swagger) and {base_url}/api/redoc/\n"
            + "  Other logins: "
            + ", ".join(f"{u}/{p} ({what})" for u, (p, _, _, what) in DEMO_USERS.items())
            + '\n  Break the bonus system: make manage CMD="simulator bonus down" '
            + '(repair: make manage CMD="simulator bonus up")\n'
            + "  Ctrl-C stops the server and the worker.\n"
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
        wait_for_incident(timeout=60)
        return True
