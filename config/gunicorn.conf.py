"""gunicorn settings for production and bench/api.py: ``gunicorn -c config/gunicorn.conf.py``.

Threaded workers (gthread): a request waiting on PostgreSQL no longer holds a whole worker, so
two processes on two cores keep both cores busy. Each thread keeps its own persistent database
connection (CONN_MAX_AGE), so size PostgreSQL's max_connections for workers x threads.
"""

import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("FLOWDESK_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FLOWDESK_WEB_WORKERS", "2"))
threads = int(os.environ.get("FLOWDESK_WEB_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
loglevel = os.environ.get("FLOWDESK_LOG_LEVEL", "warning").lower()
timeout = 30
