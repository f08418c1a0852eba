"""Persistence: one async SQLAlchemy code path for SQLite (default) and PostgreSQL."""
