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
