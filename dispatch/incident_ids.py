"""The incident id in a console URL or form, checked the same way by the API, the pages and the evidence routes.

Its own module because the evidence routes need it too and sit below ``dispatch.api`` (whose incident routes
import them), so they cannot import it from there.
"""

from __future__ import annotations

import uuid

from storage.db import NotFoundError


def valid_incident_id(incident_id: str) -> str:
    """Normalised UUID text, or NotFoundError (an id that cannot exist is simply not found)."""
    try:
        return str(uuid.UUID(incident_id))
    except (ValueError, AttributeError):
        raise NotFoundError(incident_id) from None
