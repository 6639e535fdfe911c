from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TasksInboxConfig(AppConfig):
    name = "tasks_inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        from tasks_inbox import permissions

        # A flush or migrate recreates auth_permission rows with new ids.
        post_migrate.connect(permissions.clear_cache, dispatch_uid="tasks_inbox.clear_perm_cache")
