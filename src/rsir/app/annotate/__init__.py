"""The annotation service: a FastAPI app where people answer ANNEAL's pair questions. ``app.py`` builds the
app, ``campaign.py`` runs the campaign's rounds beside it (over :class:`rsir.api_campaign.Campaign`, the
object a notebook drives too), ``models.py`` the request and response schemas."""

from rsir.app.annotate.app import create_annotate_app

__all__ = ["create_annotate_app"]
