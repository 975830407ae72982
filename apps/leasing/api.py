"""HTTP endpoints of tenants, leases and lease documents (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["leasing"])
