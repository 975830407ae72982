"""Who sees what: the names the selectors import, all defined once in `apps/common/policy.py`.

- an admin sees everything;
- a landlord sees the properties they own, a property manager the ones they manage
  (either kind sees both if they hold both links), and everything under those properties;
- a tenant sees their own tenant records and what hangs off them: their leases, the
  units of those leases, the transactions of those leases, their maintenance requests
  and HUD applications.
Objects outside the caller's view answer 404, never 403, so ids cannot be probed.
"""

from typing import Protocol

from apps.common.policy import NOT_FOUND, not_found, property_staff_q, tenant_user_q

__all__ = ["NOT_FOUND", "Caller", "not_found", "property_staff_q", "tenant_user_q"]


class Caller(Protocol):
    """A principal as the selectors see it (`apps.common.policy.Subject` plus `is_admin`)."""

    @property
    def user_id(self) -> str: ...

    @property
    def user_type(self) -> str: ...

    @property
    def roles(self) -> tuple[str, ...]: ...

    @property
    def is_admin(self) -> bool: ...
