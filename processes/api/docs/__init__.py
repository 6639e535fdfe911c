"""The API's OpenAPI description, one module per resource: named ``extend_schema`` decorators
(summary, description, request, responses, examples), so a view's body shows only its logic."""
