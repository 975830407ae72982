"""The HUD domain's daily job: property program approvals past their expiration date expire."""

import logging
from datetime import date

from apps.common.jobs import daily
from apps.hud import services

logger = logging.getLogger(__name__)


@daily("hud.approvals_expire")
def hud_approvals_expire(day: date) -> int:
    """On `day`: every `approved` property program whose `expiration_date` is before `day` becomes `expired`, and
    `properties.has_hud_approval` follows. Returns how many expired; idempotent (a rerun finds none) and
    catch-up safe (a past day expires only what had expired by then, which a later day would have too)."""
    expired = services.property_hud_approvals_expire(day=day)
    logger.info("hud.approvals_expire %s: %d approvals expired", day, expired)
    return expired
