"""What every JSON API of the project answers, whatever ``Accept`` says: JSON.

One content negotiation for the engine's API (``processes.api.base.ApiView``) and the
integrations' (``integrations.api``): a request's body is parsed by the parser of its
``Content-Type`` (none: 415), and the answer is rendered by the view's first renderer (JSON),
never a 406 for an ``Accept`` it can't meet. Here, below the adapters, so that both use it
without importing each other.
"""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON, whatever ``Accept`` says (there is nothing else to offer)."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip().lower() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
