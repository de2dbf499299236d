"""Database layer: SQLAlchemy models, engine construction and the Alembic migrations."""
