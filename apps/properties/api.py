"""HTTP endpoints of properties, units and amenities (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["properties"])
