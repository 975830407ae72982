"""Who sees what, as query filters built from field paths (no model imports, so every app can use it).

- an admin sees everything;
- a landlord sees the properties they own, a property manager the ones they manage
  (either kind sees both if they hold both links), and everything under those properties;
- a tenant sees their own tenant records and what hangs off them: their leases, the
  units of those leases, the transactions of those leases, their maintenance requests
  and HUD applications.
Objects outside the caller's view answer 404, never 403, so ids cannot be probed.
"""

from typing import Protocol

from django.db.models import Q

from realtime import errors
from realtime.errors import ProtocolError

NOT_FOUND = "Not found."


class Caller(Protocol):
    # Read-only members, so a frozen Principal (or a model instance) satisfies the protocol.
    @property
    def user_id(self) -> str: ...

    @property
    def user_type(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


def property_staff_q(caller: Caller, path: str = "") -> Q:
    """Rows whose property (reached through `path`, e.g. "unit__property__") the caller owns or manages."""
    return Q(**{f"{path}owner_id": caller.user_id}) | Q(**{f"{path}manager_links__user_id": caller.user_id})


def tenant_user_q(caller: Caller, path: str) -> Q:
    """Rows whose tenant (reached through `path`, e.g. "tenant_links__tenant__") is the caller."""
    return Q(**{f"{path}user_id": caller.user_id})


def not_found() -> ProtocolError:
    return ProtocolError(errors.NOT_FOUND, NOT_FOUND)
