"""Object permissions on human tasks: django-guardian's direct-foreign-key models.

A row means "this user (or every member of this group) may act on this open task". Rows exist
only while the task waits for a person; ``tasks_inbox.permissions`` keeps them in step with the
task's candidate role, assignee and claimant inside the engine's transaction.
"""

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class TaskUserObjectPermission(UserObjectPermissionBase):
    """The task's assignee and claimant."""

    content_object = models.ForeignKey(
        "processes.TaskInstance", on_delete=models.CASCADE, related_name="inbox_user_grants"
    )

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "task permission of a user"
        verbose_name_plural = "task permissions of users"


class TaskGroupObjectPermission(GroupObjectPermissionBase):
    """The task's candidate role (a Django group)."""

    content_object = models.ForeignKey(
        "processes.TaskInstance", on_delete=models.CASCADE, related_name="inbox_group_grants"
    )

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "task permission of a role"
        verbose_name_plural = "task permissions of roles"
