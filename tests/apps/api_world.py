"""A small world for HTTP permission tests: two properties with their staff and tenants, an admin,
and a client that speaks JSON with a bearer token per user."""

import json
from dataclasses import dataclass, field
from typing import Any

from django.test import Client

from apps.accounts.models import User
from apps.leasing.models import Tenant
from apps.properties.models import Property, Unit
from tests.factories import DEFAULT_PASSWORD, make_lease, make_property, make_unit, make_user

API = "/api/v1"


class Api:
    """JSON calls to /api/v1 as one user (logged in once)."""

    def __init__(self, client: Client, user: User) -> None:
        self.client, self.user = client, user
        response = client.post(
            f"{API}/auth/login",
            data=json.dumps({"email": user.email, "password": DEFAULT_PASSWORD}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        self.headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {response.json()['token']}"}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(API + path, data={k: v for k, v in params.items() if v is not None}, **self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(
            API + path,
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            **self.headers,
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(API + path, data=json.dumps(body), content_type="application/json", **self.headers)

    def put(self, path: str, body: Any) -> Any:
        return self.client.put(API + path, data=json.dumps(body), content_type="application/json", **self.headers)

    def delete(self, path: str) -> Any:
        return self.client.delete(API + path, **self.headers)


@dataclass
class World:
    """`landlord` owns `prop` (unit `unit`, managed by `manager`, leased actively by `tenant`);
    `other_manager` manages `other_prop` (unit `other_unit`, leased by `other_tenant`)."""

    landlord: User
    manager: User
    tenant: User
    other_landlord: User
    other_manager: User
    other_tenant: User
    admin: User
    prop: Property
    unit: Unit
    other_prop: Property
    other_unit: Unit
    apis: dict[str, Api] = field(default_factory=dict)
    api_users: dict[str, Api] = field(default_factory=dict)

    def tenant_record(self, user: User) -> Tenant:
        return Tenant.objects.get(user=user)

    def api(self, client: Client, name: str) -> Api:
        if name not in self.apis:
            self.apis[name] = Api(client, getattr(self, name))
        return self.apis[name]

    def api_for(self, client: Client, user: User) -> Api:
        """Calls as a user outside the world's named ones (logged in once)."""
        key = str(user.pk)
        if key not in self.api_users:
            self.api_users[key] = Api(client, user)
        return self.api_users[key]


def build_world() -> World:
    landlord = make_user(user_type="landlord")
    manager = make_user(user_type="property_manager")
    tenant = make_user()
    other_landlord = make_user(user_type="landlord")
    other_manager = make_user(user_type="property_manager")
    other_tenant = make_user()
    admin = make_user(user_type="admin")
    prop = make_property(owner=landlord, managers=(manager,))
    unit = make_unit(property=prop)
    make_lease(unit=unit, tenants=(tenant,))
    other_prop = make_property(owner=other_landlord, managers=(other_manager,))
    other_unit = make_unit(property=other_prop)
    make_lease(unit=other_unit, tenants=(other_tenant,))
    return World(
        landlord,
        manager,
        tenant,
        other_landlord,
        other_manager,
        other_tenant,
        admin,
        prop,
        unit,
        other_prop,
        other_unit,
    )
