from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import events_out, listeners
        from processes import hooks

        hooks.register("incident_opened", listeners.on_incident_opened)
        hooks.register("task_escalated", listeners.on_task_escalated)
        hooks.register("events_written", events_out.on_events_written)
        hooks.register("processes_purged", events_out.on_processes_purged)
        hooks.register("claims_expired", events_out.take_over)
