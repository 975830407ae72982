"""HTTP endpoints of transactions, recurring transactions and late fees (mounted at /api/v1 by pms/api.py)."""

from ninja import Router

router = Router(tags=["finance"])
