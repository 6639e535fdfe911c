"""gunicorn settings for production and bench/api.py: ``gunicorn -c config/gunicorn.conf.py``.

Sync workers by default: measured with bench/api.py on 2 cores, 4 gthread threads per worker
served fewer GETs (114/s against 168/s: the GIL and switching cost more than the database waits
they hide). FLOWDESK_WEB_THREADS > 1 switches to gthread for slow upstreams; every thread keeps
its own persistent database connection, so size PostgreSQL's max_connections for it.
"""

import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("FLOWDESK_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FLOWDESK_WEB_WORKERS", "2"))
threads = int(os.environ.get("FLOWDESK_WEB_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
loglevel = os.environ.get("FLOWDESK_LOG_LEVEL", "warning").lower()
timeout = 30
