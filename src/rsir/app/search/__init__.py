"""The search service: a FastAPI app over one index (scenes by image, id, text) and, optionally, a text-ITSR
pair gallery. ``app.py`` builds the app, ``service.py`` holds what it serves, ``scenes.py`` / ``pairs.py`` the
two galleries, ``models.py`` the request and response schemas."""

from rsir.app.search.app import app_from_env, create_search_app
from rsir.app.search.serving import StoreUnavailable, shared_store

__all__ = ["StoreUnavailable", "app_from_env", "create_search_app", "shared_store"]
