"""The admin app with Flowdesk's site as ``admin.site`` (``config.admin_site``)."""

from django.contrib.admin.apps import AdminConfig


class FlowdeskAdminConfig(AdminConfig):
    default_site = "config.admin_site.FlowdeskAdminSite"
