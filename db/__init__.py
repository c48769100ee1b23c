"""State database: typed models, repositories with bulk upserts, Alembic migrations."""
