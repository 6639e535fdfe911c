from django.apps import AppConfig


class TasksInboxConfig(AppConfig):
    name = "tasks_inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        from processes import hooks
        from tasks_inbox import notifications

        hooks.register("task_escalated", notifications.on_task_escalated)
        hooks.register("task_opened", notifications.on_task_opened)
