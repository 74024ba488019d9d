"""The API's routers, one per resource family; each is mounted under /v1 by `create_app`."""
