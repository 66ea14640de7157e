"""One ASGI app: the runs API (OpenAPI) and the reviewers' dashboard."""
