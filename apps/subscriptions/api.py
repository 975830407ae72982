"""HTTP endpoints of plans, subscriptions, features, usage and pricing recommendations (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["subscriptions"])
