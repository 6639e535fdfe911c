"""The admin as control room: definitions, diagrams, instances, repairs, dashboard, exports.

Thin by rule: every change goes through an engine service with the admin user as actor, so it
lands in the process history; state fields are read-only everywhere; events can never be
changed or deleted here, not even by a superuser. Who sees and does what comes from the
per-definition grants of ``processes.authority`` (``base.GrantedAdmin``).

- ``definitions``, ``instances`` (with ``operations``: the repairs), ``events``, ``messages``:
  the pages;
- ``dashboard``: the dashboard page (its figures: ``processes.dashboard``);
- ``filters``, ``forms``, ``exports``, ``widgets`` (HTML from ``templates/admin/processes/``).
"""

from django.contrib import admin

from processes.admin.definitions import ProcessDefinitionAdmin
from processes.admin.events import ProcessEventAdmin
from processes.admin.instances import ProcessInstanceAdmin
from processes.admin.messages import ReceivedMessageAdmin
from processes.models import ProcessDefinition, ProcessEvent, ProcessInstance, ReceivedMessage

admin.site.register(ProcessDefinition, ProcessDefinitionAdmin)
admin.site.register(ProcessInstance, ProcessInstanceAdmin)
admin.site.register(ProcessEvent, ProcessEventAdmin)
admin.site.register(ReceivedMessage, ReceivedMessageAdmin)
