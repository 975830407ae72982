"""Request and response schemas of the properties API (camelCase on the wire, money as decimal strings)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.common.decimals import decimal_schema

PropertyTypeName = Literal["single_family", "multi_family", "apartment", "condo", "commercial"]

INT4_MAX = 2_147_483_647

Bathrooms = Annotated[Decimal, Field(ge=0, max_digits=3, decimal_places=1), decimal_schema(3, 1)]
Rent = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2), decimal_schema(10, 2)]
RentBound = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), decimal_schema(12, 2)]


class StrictIn(Schema):
    """Input: unknown fields are refused (a typo never silently does nothing), strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Properties ---------------------------------------------------------------------------


class PropertyIn(StrictIn):
    propertyName: str = Field(min_length=1, max_length=255)
    streetAddress: str = Field(min_length=1, max_length=255)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=1, max_length=50)
    zipCode: str = Field(min_length=1, max_length=20)
    propertyType: PropertyTypeName
    yearBuilt: int | None = Field(None, ge=1600, le=2200)
    squareFootage: int | None = Field(None, ge=0, le=INT4_MAX)
    hasHudApproval: bool = False
    hudApprovalDate: datetime | None = None
    hudProgramType: str | None = Field(None, max_length=100)
    ownerId: UUID | None = Field(None, description="Admins only: the owning landlord (default: the caller).")


class PropertyPatch(StrictIn):
    """Only the fields sent change. Fields typed without `null` refuse an explicit null."""

    propertyName: str = Field(None, min_length=1, max_length=255)  # type: ignore[assignment]
    streetAddress: str = Field(None, min_length=1, max_length=255)  # type: ignore[assignment]
    city: str = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    state: str = Field(None, min_length=1, max_length=50)  # type: ignore[assignment]
    zipCode: str = Field(None, min_length=1, max_length=20)  # type: ignore[assignment]
    propertyType: PropertyTypeName = None  # type: ignore[assignment]
    yearBuilt: int | None = Field(None, ge=1600, le=2200)
    squareFootage: int | None = Field(None, ge=0, le=INT4_MAX)
    hasHudApproval: bool = None  # type: ignore[assignment]
    hudApprovalDate: datetime | None = None
    hudProgramType: str | None = Field(None, max_length=100)
    isActive: bool = None  # type: ignore[assignment]
    ownerId: UUID = Field(None, description="Admins only.")  # type: ignore[assignment]


class PropertyOut(Schema):
    id: UUID
    ownerId: UUID | None
    propertyName: str
    streetAddress: str
    city: str
    state: str
    zipCode: str
    propertyType: str
    yearBuilt: int | None
    squareFootage: int | None
    isActive: bool
    hasHudApproval: bool
    hudApprovalDate: datetime | None
    hudProgramType: str | None
    amenityIds: list[int]
    createdAt: datetime | None
    updatedAt: datetime | None


class PropertyFilters(Schema):
    city: str | None = Field(None, max_length=100, description="Exact city, any case.")
    state: str | None = Field(None, max_length=50, description="Exact state, any case.")
    hasHudApproval: bool | None = None
    propertyType: PropertyTypeName | None = None
    isActive: bool | None = None


class PropertySearchParams(Schema):
    q: str | None = Field(None, max_length=200, description="Words to find in name, address, city or ZIP code.")
    city: str | None = Field(None, max_length=100)
    state: str | None = Field(None, max_length=50)


class PropertyHit(Schema):
    """A search result (active properties the caller may see)."""

    id: UUID
    propertyName: str
    streetAddress: str
    city: str
    state: str
    zipCode: str
    propertyType: str
    hasHudApproval: bool


class PropertySummaryOut(Schema):
    """The seed's `property:{id}` cache."""

    id: UUID
    name: str
    address: str
    city: str
    state: str
    zipCode: str
    unitCount: int
    ownerName: str | None


class AvailabilityOut(Schema):
    """The seed's `unit:availability:{id}` cache."""

    propertyId: UUID
    totalUnits: int
    availableUnits: int
    lastUpdated: datetime


class CityOut(Schema):
    name: str
    propertyCount: int


class CitiesOut(Schema):
    """The seed's `lookup:cities:{stateCode}` cache: active properties per city."""

    stateCode: str
    cities: list[CityOut]


# Units -------------------------------------------------------------------------------


class UnitIn(StrictIn):
    unitNumber: str = Field(min_length=1, max_length=50)
    bedrooms: int = Field(ge=0, le=1000)
    bathrooms: Bathrooms
    squareFootage: int = Field(ge=0, le=INT4_MAX)
    monthlyRent: Rent
    isOccupied: bool = False
    isAvailable: bool = True
    unitFeatures: dict[str, Any] | None = None


class UnitPatch(StrictIn):
    unitNumber: str = Field(None, min_length=1, max_length=50)  # type: ignore[assignment]
    bedrooms: int = Field(None, ge=0, le=1000)  # type: ignore[assignment]
    bathrooms: Bathrooms = None  # type: ignore[assignment]
    squareFootage: int = Field(None, ge=0, le=INT4_MAX)  # type: ignore[assignment]
    monthlyRent: Rent = None  # type: ignore[assignment]
    isOccupied: bool = None  # type: ignore[assignment]
    isAvailable: bool = None  # type: ignore[assignment]
    unitFeatures: dict[str, Any] | None = None


class UnitOut(Schema):
    id: UUID
    propertyId: UUID | None
    unitNumber: str
    bedrooms: int
    bathrooms: Decimal
    squareFootage: int
    monthlyRent: Decimal
    isOccupied: bool
    isAvailable: bool
    unitFeatures: dict[str, Any] | list[Any] | None
    amenityIds: list[int]
    createdAt: datetime | None
    updatedAt: datetime | None


class UnitFilters(Schema):
    isAvailable: bool | None = None
    minRent: RentBound | None = None
    maxRent: RentBound | None = None
    bedrooms: int | None = Field(None, ge=0, le=1000)


class AllUnitFilters(UnitFilters):
    propertyId: UUID | None = None


# Amenities and managers ----------------------------------------------------------------


class AmenityIn(StrictIn):
    name: str = Field(min_length=1, max_length=100)
    category: str = Field(min_length=1, max_length=50)


class AmenityPatch(StrictIn):
    name: str = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    category: str = Field(None, min_length=1, max_length=50)  # type: ignore[assignment]


class AmenityOut(Schema):
    id: int
    name: str
    category: str


class AmenityNameOut(Schema):
    """An entry of the seed's `lookup:amenities` cache."""

    id: int
    name: str


class AmenityIdsIn(StrictIn):
    amenityIds: list[int] = Field(max_length=500)


class ManagerIn(StrictIn):
    userId: UUID


class ManagerOut(Schema):
    userId: UUID
    email: str
    firstName: str
    lastName: str
    userType: str
    addedAt: datetime | None
