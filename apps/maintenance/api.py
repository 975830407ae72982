"""HTTP endpoints of maintenance requests, vendors and work orders (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["maintenance"])
