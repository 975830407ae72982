"""HTTP endpoints of users and roles, for admins (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["users"])
