"""OpenAPI of ``/api/stats/``: trends over time."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from processes.api import schema as s

trends = extend_schema(
    tags=["stats"],
    summary="Trends of one definition per month or week",
    description=(
        "Per period (a month, or an ISO week from Monday, in the server's time zone): cases "
        "started, completed and cancelled; the lead time of the completed cases (start to end, "
        "p50/p95, seconds); the time tasks waited for people (HUMAN tasks, opened to finished) "
        "and for systems (SERVICE tasks, scheduled to finished): how many, p50, p95 and total "
        "seconds; late approvals (HUMAN tasks finished after their due time, and those still "
        "open past it, by their due time's period), in all and per candidate role. Every "
        "period of the range is listed, empty ones too. Read from the dashboard's projection "
        "(`behind` > 0: the task figures miss events not projected yet). `format=csv` answers "
        "the same figures as CSV. Needs view rights on the definition (404 otherwise); a bad "
        "parameter → 400 naming it."
    ),
    parameters=[
        OpenApiParameter("definition", OpenApiTypes.STR, required=True),
        OpenApiParameter("by", OpenApiTypes.STR, enum=["month", "week"], default="month"),
        OpenApiParameter(
            "from",
            OpenApiTypes.DATE,
            description="First day; its whole period counts. Default: 11 periods before `to`.",
        ),
        OpenApiParameter(
            "to",
            OpenApiTypes.DATE,
            description="Last day; its whole period counts. Default: today.",
        ),
        OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], default="json"),
    ],
    responses={
        200: OpenApiResponse(OpenApiTypes.OBJECT, description="The periods' figures."),
        **s.READ_ERRORS,
    },
    examples=[
        s.response_example(
            "one month",
            {
                "definition": "salary",
                "by": "month",
                "from": "2026-11-01",
                "to": "2026-11-30",
                "time_zone": "Europe/Paris",
                "behind": 0,
                "periods": [
                    {
                        "period": "2026-11-01",
                        "started": 42,
                        "completed": 38,
                        "cancelled": 2,
                        "lead_seconds": {"p50": 86400.0, "p95": 259200.0},
                        "waiting_for_people": {
                            "tasks": 80,
                            "p50": 7200.0,
                            "p95": 172800.0,
                            "total_seconds": 1728000.0,
                        },
                        "waiting_for_systems": {
                            "tasks": 120,
                            "p50": 2.5,
                            "p95": 40.0,
                            "total_seconds": 900.0,
                        },
                        "late_approvals": {
                            "finished_late": 3,
                            "open_past_due": 1,
                            "by_role": {"managers": {"finished_late": 3, "open_past_due": 1}},
                        },
                    }
                ],
            },
            "200",
        )
    ],
)
