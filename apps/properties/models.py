"""Properties, their units and amenities: the seed's `properties`, `units`, `amenities`,
`property_amenities`, `unit_amenities`, plus the `property_managers` extension."""

from django.db import models

from apps.common.fields import (
    created_at_field,
    enum_check,
    enum_field,
    flag_field,
    updated_at_field,
    uuid_primary_key,
)


class PropertyType(models.TextChoices):
    SINGLE_FAMILY = "single_family", "Single family"
    MULTI_FAMILY = "multi_family", "Multi family"
    APARTMENT = "apartment", "Apartment"
    CONDO = "condo", "Condo"
    COMMERCIAL = "commercial", "Commercial"


class Property(models.Model):
    """A building or lot owned by a landlord, holding one or more units."""

    id = uuid_primary_key("property_id")
    # Indexed by idx_properties_owner_id below, so no second Django FK index.
    owner = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="owned_properties",
        db_column="owner_id",
        db_index=False,
    )
    property_name = models.CharField(max_length=255)
    street_address = models.CharField(max_length=255)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=50)
    zip_code = models.CharField(max_length=20)
    property_type = enum_field(PropertyType)
    year_built = models.IntegerField(null=True, blank=True)
    square_footage = models.IntegerField(null=True, blank=True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    is_active = flag_field(True)
    has_hud_approval = flag_field(False)
    hud_approval_date = models.DateTimeField(null=True, blank=True)
    hud_program_type = models.CharField(max_length=100, null=True, blank=True)

    class Meta:
        db_table = "properties"
        verbose_name_plural = "properties"
        ordering = ["property_name"]
        indexes = [
            models.Index(fields=["owner"], name="idx_properties_owner_id"),
            models.Index(fields=["city", "state"], name="idx_properties_city_state"),
            models.Index(fields=["has_hud_approval"], name="idx_properties_hud_approval"),
        ]
        constraints = [enum_check("properties", "property_type", PropertyType)]

    def __str__(self) -> str:
        return self.property_name


class Unit(models.Model):
    """A rentable unit (apartment, suite, house) inside a property."""

    id = uuid_primary_key("unit_id")
    # Indexed by idx_units_property_id below, so no second Django FK index.
    property = models.ForeignKey(
        Property,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="units",
        db_column="property_id",
        db_index=False,
    )
    unit_number = models.CharField(max_length=50)
    bedrooms = models.IntegerField()
    bathrooms = models.DecimalField(max_digits=3, decimal_places=1)
    square_footage = models.IntegerField()
    monthly_rent = models.DecimalField(max_digits=10, decimal_places=2)
    is_occupied = flag_field(False)
    is_available = flag_field(True)
    created_at = created_at_field()
    updated_at = updated_at_field()
    unit_features = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "units"
        ordering = ["property__property_name", "unit_number"]
        indexes = [
            models.Index(fields=["property"], name="idx_units_property_id"),
            models.Index(fields=["is_available"], name="idx_units_is_available"),
            models.Index(fields=["monthly_rent"], name="idx_units_monthly_rent"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["property", "unit_number"], name="units_property_id_unit_number_key")
        ]

    def __str__(self) -> str:
        if self.property is None:  # no query when property_id is None
            return f"Unit {self.unit_number}"
        return f"{self.property.property_name}, unit {self.unit_number}"


class Amenity(models.Model):
    """A feature a property or unit can offer (pool, parking, in-unit laundry ...)."""

    id = models.AutoField(primary_key=True, db_column="amenity_id")
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=50)

    class Meta:
        db_table = "amenities"
        verbose_name_plural = "amenities"
        ordering = ["category", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.category})"


class PropertyAmenity(models.Model):
    """An amenity offered by a whole property (composite key: property, amenity)."""

    pk = models.CompositePrimaryKey("property_id", "amenity_id")
    # The primary key's index already leads with property_id: no second Django FK index.
    property = models.ForeignKey(
        Property,
        on_delete=models.CASCADE,
        related_name="amenity_links",
        db_column="property_id",
        db_index=False,
    )
    amenity = models.ForeignKey(
        Amenity, on_delete=models.CASCADE, related_name="property_links", db_column="amenity_id"
    )

    class Meta:
        db_table = "property_amenities"
        verbose_name_plural = "property amenities"

    def __str__(self) -> str:
        return f"amenity {self.amenity_id} of property {self.property_id}"


class UnitAmenity(models.Model):
    """An amenity offered by a single unit (composite key: unit, amenity)."""

    pk = models.CompositePrimaryKey("unit_id", "amenity_id")
    # The primary key's index already leads with unit_id: no second Django FK index.
    unit = models.ForeignKey(
        Unit,
        on_delete=models.CASCADE,
        related_name="amenity_links",
        db_column="unit_id",
        db_index=False,
    )
    amenity = models.ForeignKey(Amenity, on_delete=models.CASCADE, related_name="unit_links", db_column="amenity_id")

    class Meta:
        db_table = "unit_amenities"
        verbose_name_plural = "unit amenities"

    def __str__(self) -> str:
        return f"amenity {self.amenity_id} of unit {self.unit_id}"


class PropertyManager(models.Model):
    """Extension the seed lacks: which users manage which property."""

    id = uuid_primary_key("property_manager_id")
    # The unique constraint's index already leads with property_id: no second Django FK index.
    property = models.ForeignKey(
        Property,
        on_delete=models.CASCADE,
        related_name="manager_links",
        db_column="property_id",
        db_index=False,
    )
    user = models.ForeignKey(
        "accounts.User",
        on_delete=models.CASCADE,
        related_name="managed_property_links",
        db_column="user_id",
    )
    created_at = created_at_field()

    class Meta:
        db_table = "property_managers"
        constraints = [
            models.UniqueConstraint(fields=["property", "user"], name="property_managers_property_id_user_id_key")
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} manages property {self.property_id}"
