"""Every statement Flowdesk writes out by hand, in one place.

Building a query through Django's ORM costs more CPU than a local PostgreSQL takes to run it, so
the statements that run on every engine step and every API call are fixed SQL (94.8 → 150
service tasks/s, API detail p99 4 s → 20 ms). They live here and only here, as named functions:
no SQL fragment is passed in from outside, table and column names come from the models' ``_meta``
(``core.table``, ``core.columns``), and each query has a test comparing it with its ORM twin.

- ``core``: the names, and the writes through the public ORM (``bulk_create``, ``QuerySet.update``);
- ``internals``: the one module below the ORM (the engine's row reads, its one-statement writes,
  a batch's COPY), pinned by ``tests/processes/test_db_internals.py``;
- ``engine``: what every engine event runs (lock an instance, its tasks, the business-key check);
- ``grants``: the definition-grant check as one SQL condition (guardian's rule, tested equal);
- ``api``: token → user, the process detail with the caller's grant, the startable definition;
- ``dashboard``, ``projections``: the monitoring figures' aggregate queries.
"""
