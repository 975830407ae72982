"""Admin for tenants, leases, lease documents and lease invitations.

`LeaseTenant` has a composite primary key, which Django admin cannot register or
inline; a lease's tenants (and its primary tenant) are edited on the lease page.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.common.service_admin import ServiceWriteAdmin
from apps.leasing import invitations, services
from apps.leasing.models import (
    InvitationStatus,
    Lease,
    LeaseDocument,
    LeaseInvitation,
    LeaseNotice,
    LeaseTenant,
    Tenant,
)
from realtime.errors import ProtocolError


def tenant_choices() -> QuerySet[Tenant]:
    return Tenant.objects.select_related("user").order_by("user__last_name", "user__first_name")


class LeaseAdminForm(forms.ModelForm):
    """Lease form with `tenants` and `primary_tenant` fields backed by `lease_tenants` rows."""

    tenants = forms.ModelMultipleChoiceField(
        queryset=tenant_choices(),
        required=False,
        widget=FilteredSelectMultiple("tenants", is_stacked=False),
    )
    primary_tenant = forms.ModelChoiceField(
        queryset=tenant_choices(),
        required=False,
        help_text="Added to the lease's tenants if not chosen there.",
    )

    class Meta:
        model = Lease
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            links = list(LeaseTenant.objects.filter(lease=self.instance))
            self.fields["tenants"].initial = [link.tenant_id for link in links]
            primary = next((link.tenant_id for link in links if link.is_primary), None)
            self.fields["primary_tenant"].initial = primary

    def save_tenants(self) -> None:
        """Make the lease's `lease_tenants` rows match the form (through the service: whoever joins or
        leaves is re-checked after the commit); exactly the chosen primary."""
        primary: Tenant | None = self.cleaned_data.get("primary_tenant")
        services.lease_tenants_admin_set(
            lease=self.instance,
            tenant_ids={tenant.pk for tenant in self.cleaned_data.get("tenants", [])},
            primary_id=primary.pk if primary is not None else None,
        )


class LeaseDocumentInline(admin.TabularInline):
    model = LeaseDocument
    extra = 0
    fields = ["document_type", "document_url", "uploaded_by", "uploaded_at", "is_signed", "signed_at"]
    raw_id_fields = ["uploaded_by"]


@admin.register(Tenant)
class TenantAdmin(ServiceWriteAdmin):
    list_display = [
        "__str__",
        "employment_status",
        "employer_name",
        "income",
        "background_check_status",
        "credit_check_status",
        "created_at",
    ]
    list_filter = ["background_check_status", "credit_check_status", "employment_status"]
    search_fields = [
        "user__email",
        "user__first_name",
        "user__last_name",
        "employer_name",
        "emergency_contact_name",
    ]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # Tenant.__str__ names the user; also used by the autocomplete of other admins.
        return super().get_queryset(request).select_related("user")

    def service_save(self, request: HttpRequest, obj: Tenant) -> None:
        services.tenant_admin_save(tenant=obj)

    def service_delete(self, request: HttpRequest, obj: Tenant) -> None:
        services.tenant_admin_delete(tenant=obj)


@admin.register(Lease)
class LeaseAdmin(ServiceWriteAdmin):
    form = LeaseAdminForm
    list_display = [
        "__str__",
        "start_date",
        "end_date",
        "monthly_rent",
        "security_deposit",
        "lease_status",
        "is_signed",
        "auto_renewal",
    ]
    list_filter = [
        "lease_status",
        "is_signed",
        "auto_renewal",
        "start_date",
        "end_date",
        "unit__property",
    ]
    search_fields = [
        "unit__unit_number",
        "unit__property__property_name",
        "tenant_links__tenant__user__email",
        "tenant_links__tenant__user__last_name",
    ]
    list_select_related = ["unit", "unit__property"]
    autocomplete_fields = ["unit"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "start_date"
    inlines = [LeaseDocumentInline]
    fieldsets = [
        (None, {"fields": ["unit", "lease_status", "tenants", "primary_tenant"]}),
        (
            "Terms",
            {
                "fields": [
                    "start_date",
                    "end_date",
                    "monthly_rent",
                    "security_deposit",
                    "auto_renewal",
                    "special_terms",
                ]
            },
        ),
        ("Signature", {"fields": ["is_signed", "lease_document_url"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lease]:
        # Lease.__str__ names unit and property; also used by the autocomplete of other admins.
        return super().get_queryset(request).select_related("unit", "unit__property")

    def service_save(self, request: HttpRequest, obj: Lease) -> None:
        services.lease_admin_save(lease=obj)

    def service_delete(self, request: HttpRequest, obj: Lease) -> None:
        services.lease_admin_delete(lease=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Documents added without an uploader are recorded as uploaded by the admin user."""
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            obj.delete()
        for instance in instances:
            if isinstance(instance, LeaseDocument) and instance.uploaded_by_id is None:
                instance.uploaded_by = request.user  # type: ignore[assignment]  # admin requests are signed in
            instance.save()
        formset.save_m2m()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.save_tenants()


@admin.register(LeaseDocument)
class LeaseDocumentAdmin(admin.ModelAdmin):
    list_display = ["document_type", "lease", "uploaded_by", "uploaded_at", "is_signed", "signed_at"]
    list_filter = ["document_type", "is_signed", "uploaded_at"]
    search_fields = [
        "document_type",
        "document_url",
        "lease__unit__unit_number",
        "lease__unit__property__property_name",
    ]
    list_select_related = ["lease", "lease__unit", "lease__unit__property", "uploaded_by"]
    autocomplete_fields = ["lease"]
    raw_id_fields = ["uploaded_by"]
    date_hierarchy = "uploaded_at"

    def save_model(self, request: HttpRequest, obj: LeaseDocument, form: Any, change: bool) -> None:
        if obj.uploaded_by_id is None:
            obj.uploaded_by = request.user  # type: ignore[assignment]  # admin requests are signed in
        super().save_model(request, obj, form, change)


@admin.register(LeaseInvitation)
class LeaseInvitationAdmin(admin.ModelAdmin):
    """Invitations are read here and revoked with the action; none are added or edited by hand:
    an admin puts a tenant on a lease directly (the lease form), without an invitation, and
    landlords and managers invite over the API."""

    list_display = [
        "lease",
        "invited_user",
        "invited_by",
        "is_primary",
        "status",
        "created_at",
        "expires_at",
        "responded_at",
    ]
    list_filter = ["status", "is_primary", "created_at"]
    search_fields = [
        "invited_user__email",
        "invited_user__last_name",
        "invited_by__email",
        "lease__unit__unit_number",
        "lease__unit__property__property_name",
    ]
    list_select_related = ["lease", "lease__unit", "lease__unit__property", "invited_user", "invited_by"]
    readonly_fields = [
        "lease",
        "invited_user",
        "invited_by",
        "is_primary",
        "status",
        "tenant_profile",
        "created_at",
        "responded_at",
        "expires_at",
    ]
    date_hierarchy = "created_at"
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LeaseInvitation | None = None) -> bool:
        return False  # kept for the record; revoke instead

    @admin.action(description="Revoke the selected pending invitations")
    def revoke(self, request: HttpRequest, queryset: QuerySet[LeaseInvitation]) -> None:
        revoked = 0
        for invitation in queryset.filter(status=InvitationStatus.PENDING):
            try:
                invitations.invitation_revoke(invitation=invitation)
            except ProtocolError:
                continue  # expired meanwhile
            revoked += 1
        self.message_user(request, f"{revoked} invitation(s) revoked.", messages.SUCCESS)


@admin.register(LeaseNotice)
class LeaseNoticeAdmin(admin.ModelAdmin):
    """The lifecycle notices sent about leases (apps/leasing/lifecycle.py), read only: the daily
    jobs write them, and a row is what keeps its notice from going out twice."""

    list_display = ["lease", "notice", "due_on", "created_at"]
    list_filter = ["notice", "due_on"]
    search_fields = ["notice", "lease__unit__unit_number", "lease__unit__property__property_name"]
    list_select_related = ["lease", "lease__unit", "lease__unit__property"]
    readonly_fields = ["lease", "notice", "due_on", "created_at"]
    date_hierarchy = "due_on"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LeaseNotice | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LeaseNotice | None = None) -> bool:
        return False
