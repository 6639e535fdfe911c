"""The API's views, one module per resource; each view validates its input, calls one selector or
engine function and translates the result to HTTP. Their OpenAPI is in ``processes/api/docs/``."""
