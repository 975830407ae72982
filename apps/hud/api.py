"""HTTP endpoints of housing authorities, HUD programs, applications and forms (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["hud"])
