"""Reads of the HUD domain, narrowed to what the caller may see.

Housing authorities and HUD programs are reference data every signed-in user reads.
A property's programs are for its staff and admins. HUD applications (and their forms):
an admin sees all; a tenant their own (`tenant.user` is the caller); a landlord or property
manager those of tenants holding a lease (any status) on a unit of their properties.
Objects outside the caller's view raise `not_found`.
"""

from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet

from apps.accounts.services import Principal
from apps.common import policy
from apps.common.visibility import not_found, tenant_user_q
from apps.hud.models import HousingAuthority, HudApplication, HudForm, HudProgram, PropertyHudProgram
from apps.leasing.models import Tenant
from apps.properties.models import Property


def _filtered(queryset: QuerySet[Any], q: Q | None) -> QuerySet[Any]:
    """`queryset` limited to `q` through a `pk IN (subquery)` (no duplicates); all rows for None."""
    return queryset if q is None else queryset.filter(pk__in=queryset.model.objects.filter(q).values("pk"))


def staff_tenant_ids(caller: Principal, permission: str = "hud.manage") -> QuerySet[Tenant, Any]:
    """Subquery: tenants with a lease under a property in the caller's `permission` scope
    (staff: their properties'; admins: every tenant)."""
    q = policy.visible_q(caller, permission, property_path="lease_links__lease__unit__property__")
    return _filtered(Tenant.objects.all(), q).values("pk")


def access_property_as_staff(*, caller: Principal, property_id: UUID) -> Property:
    """The property when it is in the caller's `hud.manage` scope (an admin or its staff), else `not_found`."""
    q = policy.visible_q(caller, "hud.manage", property_path="")
    prop = _filtered(Property.objects.filter(pk=property_id), q).first()
    if prop is None:
        raise not_found()
    return prop


# --- reference data ------------------------------------------------------------------------


def housing_authority_list(*, state: str | None = None) -> QuerySet[HousingAuthority]:
    authorities = HousingAuthority.objects.all()
    if state is not None:
        authorities = authorities.filter(state__iexact=state)
    return authorities.order_by("name", "pk")


def housing_authority_get(*, authority_id: UUID) -> HousingAuthority:
    found = HousingAuthority.objects.filter(pk=authority_id).first()
    if found is None:
        raise not_found()
    return found


def hud_program_list(*, program_code: str | None = None) -> QuerySet[HudProgram]:
    programs = HudProgram.objects.all()
    if program_code is not None:
        programs = programs.filter(program_code__iexact=program_code)
    return programs.order_by("program_name", "pk")


def hud_program_get(*, program_id: UUID) -> HudProgram:
    found = HudProgram.objects.filter(pk=program_id).first()
    if found is None:
        raise not_found()
    return found


def property_hud_program_list(*, property_id: Any) -> QuerySet[PropertyHudProgram]:
    return (
        PropertyHudProgram.objects.filter(property_id=property_id)
        .select_related("program")
        .order_by("program__program_name", "program_id")
    )


# --- applications and forms ----------------------------------------------------------------


def hud_application_visible(*, caller: Principal) -> QuerySet[HudApplication]:
    """Applications in the caller's `hud.view` scope: an applicant's own, staff those of their
    properties' tenants, admins all."""
    q = policy.visible_q(
        caller,
        "hud.view",
        property_path="tenant__lease_links__lease__unit__property__",
        own=tenant_user_q(caller, "tenant__"),
    )
    return _filtered(HudApplication.objects.all(), q)


def hud_application_list(
    *, caller: Principal, tenant_id: UUID | None = None, status: str | None = None
) -> QuerySet[HudApplication]:
    """Visible applications, newest application date first; 403 without `hud.view`."""
    policy.require(caller, "hud.view")
    applications = hud_application_visible(caller=caller)
    if tenant_id is not None:
        applications = applications.filter(tenant_id=tenant_id)
    if status is not None:
        applications = applications.filter(status=status)
    return applications.order_by("-application_date", "-pk")


def access_hud_application(*, caller: Principal, application_id: UUID, for_update: bool = False) -> HudApplication:
    applications = hud_application_visible(caller=caller).filter(pk=application_id)
    if for_update:
        applications = HudApplication.objects.select_for_update().filter(pk__in=applications.values("pk"))
    found = applications.first()
    if found is None:
        raise not_found()
    return found


def hud_application_is_managed_by(*, caller: Principal, application: HudApplication) -> bool:
    """Admins, and staff of a property where the applicant holds a lease, decide on the application
    (`hud.manage` in their scope)."""
    if policy.sees_all(caller, "hud.manage"):
        return True
    return application.tenant_id is not None and staff_tenant_ids(caller).filter(pk=application.tenant_id).exists()


def hud_application_is_own(*, caller: Principal, application: HudApplication) -> bool:
    return (
        application.tenant_id is not None
        and Tenant.objects.filter(pk=application.tenant_id, user_id=caller.user_id).exists()
    )


def hud_form_list(*, application: HudApplication) -> QuerySet[HudForm]:
    return HudForm.objects.filter(application=application).order_by("form_type", "pk")


def access_hud_form(*, caller: Principal, form_id: UUID, for_update: bool = False) -> HudForm:
    forms = HudForm.objects.filter(pk=form_id, application__in=hud_application_visible(caller=caller).values("pk"))
    if for_update:
        forms = HudForm.objects.select_for_update(of=("self",)).filter(pk__in=forms.values("pk"))
    found = forms.select_related("application").first()
    if found is None:
        raise not_found()
    return found
