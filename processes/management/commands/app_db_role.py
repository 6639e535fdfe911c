"""``manage.py app_db_role ROLE [--password-env VAR]``: the PostgreSQL role the application runs as.

The tables belong to the role that runs the migrations (the owner). The web server and the
workers should connect as another role, made by this command: it may read and write every
table, but only read and append to the event log — no UPDATE, DELETE or TRUNCATE there, and as
it owns nothing it can't disable the event log's triggers either. Run it again after a
``migrate`` that adds tables (it is idempotent); run it as the owner.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

from processes.models import ProcessEvent

EVENT_TABLE = ProcessEvent._meta.db_table


class Command(BaseCommand):
    help = "Create or update the PostgreSQL role the application runs as (not the tables' owner)."

    def add_arguments(self, parser):
        parser.add_argument("role", help="role name, e.g. flowdesk_app")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            help="set the role's password from this environment variable (never on the "
            "command line)",
        )

    def handle(self, *args, role: str, password_env: str | None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("app_db_role is for PostgreSQL; SQLite has no roles")
        if not role.replace("_", "").isalnum() or not role[0].isalpha() or len(role) > 63:
            raise CommandError(f"invalid role name {role!r}: letters, digits and '_' only")
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"environment variable {password_env} is empty or unset")
        ident = sql.Identifier(role)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database()")
            owner, database = cursor.fetchone()
            if role == owner:
                raise CommandError(
                    f"{role!r} is the role running this command (the owner): choose another"
                )
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident).as_string(cursor))
                self.stdout.write(f"created role {role}")
            if password is not None:
                cursor.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}")
                    .format(ident, sql.Literal(password))
                    .as_string(cursor)
                )
            statements = [
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), ident
                ),
                sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
                ).format(ident),
                sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                    sql.Identifier(EVENT_TABLE), ident
                ),
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(
                    ident
                ),
            ]
            for statement in statements:
                cursor.execute(statement.as_string(cursor))
        self.stdout.write(
            f"{role}: read/write on every table, read and append only on {EVENT_TABLE}. "
            f"Point the application's DATABASE_URL at it; keep running migrations as {owner}."
        )
