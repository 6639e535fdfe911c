"""Small input and output serializers, one module per resource. Input ones only validate; none of
them ever ``.save()``; every name is importable from ``processes.api.serializers``."""

from processes.api.serializers.attachments import (  # noqa: F401
    AttachmentSerializer,
    AttachmentUploadSerializer,
)
from processes.api.serializers.common import (  # noqa: F401
    ErrorDetailSerializer,
    ErrorSerializer,
    OutputSerializer,
    SpecErrorSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from processes.api.serializers.definitions import (  # noqa: F401
    DefinitionDetailSerializer,
    DefinitionImportedSerializer,
    DefinitionSerializer,
    DefinitionVersionSerializer,
)
from processes.api.serializers.operate import (  # noqa: F401
    IncidentQuerySerializer,
    IncidentSerializer,
    ReassignSerializer,
    RepairSerializer,
    SkipSerializer,
)
from processes.api.serializers.processes import (  # noqa: F401
    ArchivedProcessSerializer,
    ArchiveLocationSerializer,
    BatchItemSerializer,
    BatchResultSerializer,
    BatchSummarySerializer,
    InstanceMigrationSerializer,
    MappedTaskSerializer,
    MigrationRequestSerializer,
    MigrationResultSerializer,
    MigrationSummarySerializer,
    ProcessAsOfQuerySerializer,
    ProcessAsOfSerializer,
    ProcessBatchSerializer,
    ProcessCancelSerializer,
    ProcessDetailSerializer,
    ProcessEventSerializer,
    ProcessSerializer,
    ProcessStartSerializer,
    TaskRoundSerializer,
    TaskSerializer,
    TaskStateAtSerializer,
    _username,
)
from processes.api.serializers.seed_events import (  # noqa: F401
    LockedTaskSerializer,
    LockExtendSerializer,
    LockSerializer,
    MessageResultSerializer,
    MessageSerializer,
    SeedEventResultSerializer,
    SeedEventSerializer,
    StartTaskSerializer,
    UnlockSerializer,
)
from processes.api.serializers.tasks import (  # noqa: F401
    CorrectionSerializer,
    InboxTaskSerializer,
    TaskActionResultSerializer,
    TaskCompleteSerializer,
    TaskDelegateSerializer,
    TaskDetailPartsSerializer,
    TaskDetailSerializer,
    TaskRightsSerializer,
    VariablesCorrectionSerializer,
    form_fields,
    task_detail,
)
