from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import alerts, events_out, listeners, outbox
        from processes import hooks

        hooks.register("incident_opened", listeners.on_incident_opened)
        hooks.register("task_escalated", listeners.on_task_escalated)
        hooks.register("cluster_stalled", alerts.cluster_stalled)
        hooks.register("cluster_resumed", alerts.cluster_resumed)
        hooks.register("events_written", events_out.on_events_written)
        hooks.register("processes_purged", events_out.on_processes_purged)
        # the outboxes (alerts.SMS, events_out.EVENTS, registered as they are imported above)
        hooks.register("claims_expired", outbox.take_over_all)
        hooks.register("setup", outbox.ensure_schedules)
