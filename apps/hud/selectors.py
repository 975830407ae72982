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
from apps.common.visibility import not_found, property_staff_q, tenant_user_q
from apps.hud.models import HousingAuthority, HudApplication, HudForm, HudProgram, PropertyHudProgram
from apps.leasing.models import Tenant
from apps.properties.models import Property


def staff_property_ids(caller: Principal) -> QuerySet[Property, Any]:
    return Property.objects.filter(property_staff_q(caller)).values("pk")


def staff_tenant_ids(caller: Principal) -> QuerySet[Tenant, Any]:
    """Subquery: tenants with a lease on a unit of a property the caller owns or manages."""
    return Tenant.objects.filter(lease_links__lease__unit__property__in=staff_property_ids(caller)).values("pk")


def access_property_as_staff(*, caller: Principal, property_id: UUID) -> Property:
    """The property when the caller is an admin or its staff, else `not_found`."""
    found = Property.objects.filter(pk=property_id)
    if not caller.is_admin:
        found = found.filter(pk__in=staff_property_ids(caller))
    prop = found.first()
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
    return PropertyHudProgram.objects.filter(property_id=property_id).select_related("program").order_by(
        "program__program_name", "program_id"
    )


# --- applications and forms ----------------------------------------------------------------


def hud_application_visible(*, caller: Principal) -> QuerySet[HudApplication]:
    applications = HudApplication.objects.all()
    if caller.is_admin:
        return applications
    return applications.filter(tenant_user_q(caller, "tenant__") | Q(tenant__in=staff_tenant_ids(caller)))


def hud_application_list(
    *, caller: Principal, tenant_id: UUID | None = None, status: str | None = None
) -> QuerySet[HudApplication]:
    """Visible applications, newest application date first."""
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
    """Admins, and staff of a property where the applicant holds a lease, decide on the application."""
    if caller.is_admin:
        return True
    return application.tenant_id is not None and staff_tenant_ids(caller).filter(pk=application.tenant_id).exists()


def hud_application_is_own(*, caller: Principal, application: HudApplication) -> bool:
    return application.tenant_id is not None and Tenant.objects.filter(
        pk=application.tenant_id, user_id=caller.user_id
    ).exists()


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
