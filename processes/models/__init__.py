"""Process definitions, instances, tasks and the append-only event log.

State fields are django-fsm fields with ``protected=True``: the only way a state changes is a
transition method below, called from ``processes.engine``.

One module per kind of row (``states``, ``definitions``, ``instances``, ``tasks``, ``audit``,
``read_models``); every name is importable from ``processes.models`` as before.
"""

from processes.models.absences import Absence, AbsenceQuerySet  # noqa: F401
from processes.models.attachments import Attachment  # noqa: F401
from processes.models.audit import (  # noqa: F401
    ActorType,
    EventType,
    ProcessEvent,
)
from processes.models.definitions import (  # noqa: F401
    DefinitionComponent,
    DefinitionEvent,
    DefinitionEventType,
    ProcessDefinition,
    ProcessDefinitionQuerySet,
    ScheduledStart,
)
from processes.models.instances import (  # noqa: F401
    ArchivedBusinessKey,
    ProcessInstance,
    overdue_q,
)
from processes.models.messages import ReceivedMessage  # noqa: F401
from processes.models.read_models import (  # noqa: F401
    ClusterHeartbeat,
    ProjectionState,
    TaskExecution,
    TimerLease,
    TrendPeriod,
)
from processes.models.states import (  # noqa: F401
    ACTIVE_PROCESS_STATES,
    DONE_TASK_STATES,
    OPEN_COMPENSATION_STATES,
    OPEN_TASK_STATES,
    UNDONE_PROCESS_STATES,
    AppendOnlyModel,
    AppendOnlyQuerySet,
    DefinitionStatus,
    ImmutableError,
    ProcessState,
    TaskState,
    TaskType,
    state_word,
)
from processes.models.tasks import (  # noqa: F401
    TaskInstance,
    TaskInstanceQuerySet,
    TaskRound,
)
