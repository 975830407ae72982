"""The admin: every registered model's list, search, filters and add page answer for an admin only."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db

REGISTERED = sorted(
    (model._meta.app_label, model._meta.model_name)
    for model in admin.site._registry
    if model._meta.app_label not in {"auth"}
)


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user(user_type="admin"))
    return client


def test_every_single_key_seed_table_has_an_admin() -> None:
    tables = {model._meta.db_table for model in admin.site._registry}
    single_key_seed_tables = {
        "users",
        "user_roles",
        "sessions",
        "properties",
        "units",
        "amenities",
        "tenants",
        "leases",
        "lease_documents",
        "transactions",
        "recurring_transactions",
        "late_fees",
        "maintenance_requests",
        "maintenance_images",
        "vendors",
        "work_orders",
        "subscription_plans",
        "subscriptions",
        "feature_access",
        "usage_tracking",
        "ai_pricing_recommendations",
        "housing_authorities",
        "hud_programs",
        "hud_applications",
        "hud_forms",
    }
    assert single_key_seed_tables <= tables, single_key_seed_tables - tables


@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_changelist_search_and_add_pages_load(admin_client: Client, app_label: str, model_name: str) -> None:
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(changelist, {"q": "x"}).status_code == 200
    add = admin_client.get(reverse(f"admin:{app_label}_{model_name}_add"))
    assert add.status_code in (200, 403)  # sessions cannot be added by hand


@pytest.mark.parametrize("user_type", ["tenant", "landlord", "property_manager"])
def test_non_admins_are_kept_out(user_type: str) -> None:
    client = Client()
    client.force_login(make_user(user_type=user_type))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_admin_creates_a_user_with_a_hashed_password(admin_client: Client) -> None:
    from apps.accounts.models import User

    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new.manager@example.test",
            "first_name": "New",
            "last_name": "Manager",
            "user_type": "property_manager",
            "is_active": "on",
            "new_password": "s3cret-Passw0rd!",
            "roles-TOTAL_FORMS": "1",
            "roles-INITIAL_FORMS": "0",
            "roles-MIN_NUM_FORMS": "0",
            "roles-MAX_NUM_FORMS": "1000",
            "roles-0-role_name": "accountant",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(email="new.manager@example.test")
    assert user.password != "s3cret-Passw0rd!" and user.check_password("s3cret-Passw0rd!")
    assert list(user.roles.values_list("role_name", flat=True)) == ["accountant"]


def test_admin_login_page_accepts_email_and_password() -> None:
    from tests.factories import DEFAULT_PASSWORD

    admin_user = make_user(user_type="admin")
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": admin_user.email, "password": DEFAULT_PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200
    tenant = make_user(user_type="tenant")
    refused = Client().post(reverse("admin:login"), {"username": tenant.email, "password": DEFAULT_PASSWORD})
    assert refused.status_code == 200  # the form again, with an error
