from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Processes"

    def ready(self) -> None:
        # Each installed app may register step handlers in its own steps.py.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("steps")
        # Extra handler modules named in the environment (e.g. test or site-specific steps).
        import importlib
        import os

        for module in filter(None, os.environ.get("FLOWDESK_STEP_MODULES", "").split(",")):
            importlib.import_module(module.strip())
        # The request id and the causing event travel with queued tasks (processes.context).
        from django_q.signals import post_execute_in_worker, pre_execute

        from processes import context

        pre_execute.connect(context.task_pre_execute, dispatch_uid="flowdesk-context-pre")
        post_execute_in_worker.connect(
            context.task_post_execute, dispatch_uid="flowdesk-context-post"
        )
