"""The factory's REST API (FastAPI): `factory_api.app:create_app` and `factory_api.app:app`.

Importing this package imports nothing else, so the Dagster bridge module can be used on its
own.
"""
