"""Compatibility with the Celery engine this pipeline replaces (see README: Migrating from the Celery engine)."""
