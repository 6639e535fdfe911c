"""SMS alerting (recipients, incidents, the SMS outbox, the watchdog's state), the state of the two
simulators, and events out (subscriptions, the delivery outbox and its log), their outboxes'
shared fields (``OutboxRow``); every model is importable from ``integrations.models``."""

from integrations.models.alerts import (  # noqa: F401
    AlertRecipient,
    AlertRecipientQuerySet,
    Incident,
    SmsMessage,
    SmsStatus,
    normalize_phone,
)
from integrations.models.events_out import (  # noqa: F401
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionKind,
    WatchdogState,
    _active_cache,
    new_secret,
)
from integrations.models.outbox import OutboxRow  # noqa: F401
from integrations.models.simulators import (  # noqa: F401
    SimulatedSystem,
    SimulatorCall,
    SimulatorFault,
    SimulatorNotice,
    SimulatorPayout,
    SimulatorResponse,
)
