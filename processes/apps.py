from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Processes"

    def ready(self) -> None:
        # Each installed app may register step handlers in its own steps.py.
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("steps")
