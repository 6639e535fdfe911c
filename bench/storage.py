"""Storage per completed salary case: run after ``bench/salary.py`` on the same database.

    .venv/bin/python bench/salary.py --n 200 --workers 4 --db-url postgresql://.../flowdesk_x
    .venv/bin/python bench/storage.py --db-url postgresql://.../flowdesk_x

``bench/salary.py`` starts from empty process tables (its TRUNCATE), so the tables' sizes are the
deltas the bench's cases made. Reports, per completed salary case: the events, the bytes of its
rows as stored (``pg_column_size`` of each row: events, tasks, the instance — before indexes),
and ``pg_total_relation_size`` (heap + TOAST + indexes) of each table divided by the cases.
"""

from __future__ import annotations

import argparse

from common import setup_django

TABLES = ("processes_processevent", "processes_taskinstance", "processes_processinstance")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", "--db-url", required=True)
    parser.add_argument("--definition", default="salary")
    args = parser.parse_args()
    setup_django(args.database_url, migrate=False)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE processes_processevent")
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'completed') "
            "FROM processes_processinstance WHERE definition_key = %s",
            [args.definition],
        )
        total, completed = cursor.fetchone()
        cursor.execute(
            "SELECT count(e.*), sum(pg_column_size(e.*)) FROM processes_processevent e "
            "JOIN processes_processinstance p ON p.id = e.process_id "
            "WHERE p.definition_key = %s AND p.state = 'completed'",
            [args.definition],
        )
        events, event_bytes = cursor.fetchone()
        cursor.execute(
            "SELECT sum(pg_column_size(t.*)) FROM processes_taskinstance t "
            "JOIN processes_processinstance p ON p.id = t.process_id "
            "WHERE p.definition_key = %s AND p.state = 'completed'",
            [args.definition],
        )
        (task_bytes,) = cursor.fetchone()
        cursor.execute(
            "SELECT sum(pg_column_size(p.*)) FROM processes_processinstance p "
            "WHERE p.definition_key = %s AND p.state = 'completed'",
            [args.definition],
        )
        (process_bytes,) = cursor.fetchone()
        relation = {}
        for name in TABLES:
            cursor.execute("SELECT pg_total_relation_size(%s), pg_relation_size(%s)", [name, name])
            relation[name] = cursor.fetchone()
    if not completed:
        raise SystemExit(f"no completed {args.definition} process: run bench/salary.py first")
    print(f"{completed} completed {args.definition} cases ({total} in all)")
    print(f"events per case: {events / completed:.1f}")
    print(f"event rows per case: {event_bytes / completed:,.0f} B")
    print(f"task rows per case: {(task_bytes or 0) / completed:,.0f} B")
    print(f"instance row per case: {(process_bytes or 0) / completed:,.0f} B")
    rows = (event_bytes + (task_bytes or 0) + (process_bytes or 0)) / completed
    print(f"rows per case, before indexes: {rows:,.0f} B")
    whole = 0
    for name, (size, heap) in relation.items():
        whole += size
        print(
            f"{name}: {size / total:,.0f} B per case with indexes and TOAST ({heap / total:,.0f} heap)"
        )
    print(f"all three tables per case: {whole / total:,.0f} B")


if __name__ == "__main__":
    main()
