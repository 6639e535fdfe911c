import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from processes import engine
from processes.events import Actor
from processes.models import ProcessInstance

# username -> (password, roles, is_staff)
DEMO_USERS = {
    "admin": ("admin", [], True),
    "manager": ("manager", ["managers"], False),
    "courier": ("courier", ["delivery_executive"], False),
}


def ensure_users() -> None:
    User = get_user_model()
    for username, (password, roles, staff) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        user.is_staff = user.is_superuser = staff
        user.email = f"{username}@example.com"
        user.save()
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])


def ensure_demo_processes() -> None:
    actor = Actor.system("demo")
    if not ProcessInstance.objects.filter(definition_key="pizza").exists():
        for n in range(1, 4):
            engine.process_start(
                definition_key="pizza", business_key=f"ORDER-00{n}", input={}, actor=actor
            )


class Command(BaseCommand):
    help = "Set up the demo (migrate, definitions, users, sample processes); --serve also runs it."

    def add_arguments(self, parser):
        parser.add_argument("--serve", action="store_true", help="run web server and worker")
        parser.add_argument(
            "--addr", default=os.environ.get("FLOWDESK_DEMO_ADDR", "127.0.0.1:8000")
        )

    def handle(self, *args, serve=False, addr="127.0.0.1:8000", **options):
        call_command("migrate", verbosity=0)
        call_command("setup_flowdesk", stdout=self.stdout)
        ensure_users()
        ensure_demo_processes()
        self.stdout.write(self.style.SUCCESS("demo data ready"))
        if not serve:
            return
        self.serve(addr)

    def serve(self, addr: str) -> None:
        env = dict(os.environ, FLOWDESK_BASE_URL=f"http://{addr}")
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        worker = subprocess.Popen([*manage, "qcluster"], env=env, start_new_session=True)
        web = subprocess.Popen([*manage, "runserver", addr, "--noreload"], env=env)
        self.stdout.write(
            self.style.SUCCESS(f"\nFlowdesk demo at http://{addr}/\n")
            + f"  inbox: http://{addr}/inbox/   admin: http://{addr}/admin/   api: http://{addr}/api/docs/\n"
            + "  logins: "
            + ", ".join(f"{u} / {p}" for u, (p, _, _) in DEMO_USERS.items())
            + "\n  Ctrl-C stops the server and the worker.\n"
        )
        try:
            while web.poll() is None and worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            web.terminate()
            # qcluster can hang on SIGTERM (django-q2 #346): wait briefly, then SIGKILL.
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
            web.wait(timeout=10)
