"""Pictures of results: retrieval grids (PNG / HTML) and curves."""
