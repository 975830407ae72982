"""Admin for housing authorities, HUD programs, applications and forms.

`PropertyHudProgram` has a composite primary key, which Django admin cannot register
or inline; a program's properties are edited as an `approved_properties` field on the
program page.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from apps.hud import services
from apps.hud.models import (
    HousingAuthority,
    HudApplication,
    HudForm,
    HudProgram,
    PropertyHudProgram,
)
from apps.properties.models import Property


class HudProgramAdminForm(forms.ModelForm):
    """Program form with an `approved_properties` field backed by `property_hud_programs` rows."""

    approved_properties = forms.ModelMultipleChoiceField(
        queryset=Property.objects.order_by("property_name"),
        required=False,
        widget=FilteredSelectMultiple("properties", is_stacked=False),
        help_text=(
            "Properties taking part in this program. Adding one creates its link with "
            "status pending; removing one deletes its link (status, dates and authority)."
        ),
    )

    class Meta:
        model = HudProgram
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["approved_properties"].initial = list(
                PropertyHudProgram.objects.filter(program=self.instance).values_list("property_id", flat=True)
            )

    def save_approved_properties(self) -> None:
        """Make the program's `property_hud_programs` rows match the chosen properties (through the HUD
        service, so `properties.has_hud_approval` follows)."""
        chosen = {prop.pk for prop in self.cleaned_data.get("approved_properties", [])}
        services.hud_program_properties_admin_set(program=self.instance, property_ids=chosen)


@admin.register(HousingAuthority)
class HousingAuthorityAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "county", "contact_name", "contact_email", "contact_phone"]
    list_filter = ["state"]
    search_fields = ["name", "state", "county", "contact_name", "contact_email"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(HudProgram)
class HudProgramAdmin(admin.ModelAdmin):
    form = HudProgramAdminForm
    list_display = ["program_code", "program_name", "created_at"]
    search_fields = ["program_code", "program_name", "description"]
    list_filter = ["property_links__status"]
    readonly_fields = ["property_links_summary", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["program_name", "program_code", "description"]}),
        ("Eligibility", {"fields": ["eligibility_criteria", "required_forms"]}),
        ("Properties", {"fields": ["approved_properties", "property_links_summary"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="links (property_hud_programs)")
    def property_links_summary(self, obj: HudProgram) -> str:
        if obj._state.adding:
            return "-"
        rows = PropertyHudProgram.objects.filter(program=obj).select_related("property", "authority")
        return (
            format_html_join(
                "",
                "<div>{}: {} (authority {}, approved {}, expires {})</div>",
                (
                    (
                        row.property.property_name,
                        row.get_status_display(),
                        row.authority or "-",
                        row.approval_date or "-",
                        row.expiration_date or "-",
                    )
                    for row in rows.order_by("property__property_name")
                ),
            )
            or "-"
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.save_approved_properties()

    def delete_model(self, request: HttpRequest, obj: HudProgram) -> None:
        services.hud_program_admin_delete(program=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[HudProgram]) -> None:
        with transaction.atomic():
            for program in queryset:
                services.hud_program_admin_delete(program=program)


class HudFormInline(admin.TabularInline):
    model = HudForm
    extra = 0
    fields = ["form_type", "form_number", "document_url", "status", "submitted_at", "rejection_reason"]


@admin.register(HudApplication)
class HudApplicationAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "program",
        "authority",
        "application_date",
        "status",
        "voucher_amount",
        "decision_date",
    ]
    list_filter = ["status", "program", "authority", "application_date", "decision_date"]
    search_fields = [
        "tenant__user__email",
        "tenant__user__last_name",
        "program__program_name",
        "program__program_code",
        "notes",
    ]
    list_select_related = ["tenant__user", "program", "authority"]
    raw_id_fields = ["tenant"]
    date_hierarchy = "application_date"
    inlines = [HudFormInline]


@admin.register(HudForm)
class HudFormAdmin(admin.ModelAdmin):
    list_display = ["form_type", "form_number", "application", "status", "submitted_at"]
    list_filter = ["status", "form_type", "submitted_at"]
    search_fields = ["form_type", "form_number", "application__tenant__user__email"]
    list_select_related = ["application"]
    raw_id_fields = ["application"]
    date_hierarchy = "submitted_at"
