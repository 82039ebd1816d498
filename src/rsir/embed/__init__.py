"""Turning an archive into embeddings (local engine; same output from every engine)."""
