"""Admin for properties, units, amenities and property managers.

`PropertyAmenity` and `UnitAmenity` have composite primary keys, which Django admin
cannot register or inline; they are edited as an "amenities" field on the property
and unit pages instead.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.common.service_admin import ServiceWriteAdmin
from apps.properties import services
from apps.properties.models import (
    Amenity,
    Property,
    PropertyAmenity,
    PropertyManager,
    Unit,
    UnitAmenity,
)


def amenities_field() -> forms.ModelMultipleChoiceField:
    """The multi-select both the property and the unit form use for their amenities."""
    return forms.ModelMultipleChoiceField(
        queryset=Amenity.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("amenities", is_stacked=False),
    )


class PropertyAdminForm(forms.ModelForm):
    """Property form with an `amenities` field backed by `property_amenities` rows."""

    amenities = amenities_field()

    class Meta:
        model = Property
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["amenities"].initial = list(
                PropertyAmenity.objects.filter(property=self.instance).values_list("amenity_id", flat=True)
            )

    def save_amenities(self) -> None:
        """Make the property's `property_amenities` rows match the chosen amenities."""
        chosen = {amenity.pk for amenity in self.cleaned_data.get("amenities", [])}
        links = PropertyAmenity.objects.filter(property=self.instance)
        links.exclude(amenity_id__in=chosen).delete()
        existing = set(links.values_list("amenity_id", flat=True))
        PropertyAmenity.objects.bulk_create(
            [PropertyAmenity(property=self.instance, amenity_id=pk) for pk in chosen - existing],
            ignore_conflicts=True,
        )


class UnitAdminForm(forms.ModelForm):
    """Unit form with an `amenities` field backed by `unit_amenities` rows."""

    amenities = amenities_field()

    class Meta:
        model = Unit
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["amenities"].initial = list(
                UnitAmenity.objects.filter(unit=self.instance).values_list("amenity_id", flat=True)
            )

    def save_amenities(self) -> None:
        """Make the unit's `unit_amenities` rows match the chosen amenities."""
        chosen = {amenity.pk for amenity in self.cleaned_data.get("amenities", [])}
        links = UnitAmenity.objects.filter(unit=self.instance)
        links.exclude(amenity_id__in=chosen).delete()
        existing = set(links.values_list("amenity_id", flat=True))
        UnitAmenity.objects.bulk_create(
            [UnitAmenity(unit=self.instance, amenity_id=pk) for pk in chosen - existing],
            ignore_conflicts=True,
        )


class PropertyManagerInline(admin.TabularInline):
    model = PropertyManager
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]
    verbose_name = "manager"
    verbose_name_plural = "managers"


class UnitInline(admin.TabularInline):
    model = Unit
    extra = 0
    fields = [
        "unit_number",
        "bedrooms",
        "bathrooms",
        "square_footage",
        "monthly_rent",
        "is_occupied",
        "is_available",
    ]
    show_change_link = True


@admin.register(Property)
class PropertyAdmin(ServiceWriteAdmin):
    form = PropertyAdminForm
    list_display = [
        "property_name",
        "city",
        "state",
        "property_type",
        "owner",
        "is_active",
        "has_hud_approval",
        "created_at",
    ]
    list_filter = [
        "property_type",
        "is_active",
        "has_hud_approval",
        "hud_program_type",
        "state",
        "owner__user_type",
        "created_at",
    ]
    search_fields = [
        "property_name",
        "street_address",
        "city",
        "zip_code",
        "owner__email",
        "owner__last_name",
    ]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [UnitInline, PropertyManagerInline]
    fieldsets = [
        (None, {"fields": ["property_name", "owner", "property_type", "is_active"]}),
        ("Address", {"fields": ["street_address", "city", "state", "zip_code"]}),
        ("Building", {"fields": ["year_built", "square_footage", "amenities"]}),
        ("HUD", {"fields": ["has_hud_approval", "hud_approval_date", "hud_program_type"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def service_save(self, request: HttpRequest, obj: Property) -> None:
        services.property_admin_save(prop=obj)

    def service_delete(self, request: HttpRequest, obj: Property) -> None:
        services.property_admin_delete(prop=obj)

    def inline_save(self, request: HttpRequest, obj: Any) -> None:
        if isinstance(obj, Unit):
            services.unit_admin_save(unit=obj)
        elif isinstance(obj, PropertyManager):
            services.property_manager_admin_save(link=obj)
        else:
            obj.save()

    def inline_delete(self, request: HttpRequest, obj: Any) -> None:
        if isinstance(obj, Unit):
            services.unit_admin_delete(unit=obj)
        elif isinstance(obj, PropertyManager):
            services.property_manager_admin_delete(link=obj)
        else:
            obj.delete()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.save_amenities()


@admin.register(Unit)
class UnitAdmin(ServiceWriteAdmin):
    form = UnitAdminForm
    list_display = [
        "unit_number",
        "property",
        "bedrooms",
        "bathrooms",
        "square_footage",
        "monthly_rent",
        "is_occupied",
        "is_available",
    ]
    list_filter = ["is_available", "is_occupied", "bedrooms", "property__city", "property"]
    search_fields = ["unit_number", "property__property_name", "property__city"]
    list_select_related = ["property"]
    autocomplete_fields = ["property"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["property", "unit_number", "is_occupied", "is_available"]}),
        (
            "Layout and rent",
            {
                "fields": [
                    "bedrooms",
                    "bathrooms",
                    "square_footage",
                    "monthly_rent",
                    "unit_features",
                    "amenities",
                ]
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Unit]:
        # Unit.__str__ names the property; also used by the autocomplete of other admins.
        return super().get_queryset(request).select_related("property")

    def service_save(self, request: HttpRequest, obj: Unit) -> None:
        services.unit_admin_save(unit=obj)

    def service_delete(self, request: HttpRequest, obj: Unit) -> None:
        services.unit_admin_delete(unit=obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        form.save_amenities()


@admin.register(Amenity)
class AmenityAdmin(ServiceWriteAdmin):
    list_display = ["name", "category"]
    list_filter = ["category"]
    search_fields = ["name", "category"]

    def service_save(self, request: HttpRequest, obj: Amenity) -> None:
        services.amenity_admin_save(amenity=obj)

    def service_delete(self, request: HttpRequest, obj: Amenity) -> None:
        services.amenity_admin_delete(amenity=obj)


@admin.register(PropertyManager)
class PropertyManagerAdmin(ServiceWriteAdmin):
    list_display = ["property", "user", "created_at"]
    list_filter = ["property", "created_at"]
    search_fields = ["property__property_name", "user__email", "user__last_name"]
    list_select_related = ["property", "user"]
    autocomplete_fields = ["property"]
    raw_id_fields = ["user"]

    def service_save(self, request: HttpRequest, obj: PropertyManager) -> None:
        services.property_manager_admin_save(link=obj)

    def service_delete(self, request: HttpRequest, obj: PropertyManager) -> None:
        services.property_manager_admin_delete(link=obj)
