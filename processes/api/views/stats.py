"""``/api/stats/trends/``: one definition's figures per month or week, as JSON or CSV."""

import csv

from django.http import HttpResponse
from rest_framework.response import Response

from processes import trends, trends_output
from processes.api.base import ApiView
from processes.api.docs import stats as docs


class TrendsView(ApiView):
    @docs.trends
    def get(self, request):
        query = trends.parse_query(request.user, request.query_params)
        figures = trends.build(query)
        if query.format == "csv":
            return csv_response(figures)
        return Response(trends_output.as_dict(figures))


def csv_response(figures: trends.Trends) -> HttpResponse:
    q = figures.query
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="trends-{q.key}-{q.by}.csv"'
    csv.writer(response).writerows(trends_output.csv_rows(figures))
    return response
