"""A membership change through a service re-checks the affected sockets at once; a bare ORM write does not.

Issue 10: services are the write path, so the HTTP endpoints and the admin site (its forms
and inline rows) change memberships through services that call
`apps.common.access.access_changed` in their transaction. The socket of a user who lost a
topic gets `unsubscribed` (reason forbidden) within a second. A bare ORM write (shell,
script, factory) is no longer seen by any model signal: the cached decision stays until its
TTL, which the last test documents.
"""

import datetime
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django.urls import reverse

from apps.leasing.models import LeaseTenant, Tenant
from apps.properties.models import PropertyManager
from realtime import keys, topics
from realtime.connections import get_redis
from tests.consumers.conftest import token_for
from tests.factories import make_conversation, make_lease, make_property, make_unit, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def subscribe(socket: Any, topic: str) -> dict[str, Any]:
    await socket.send_json_to({"type": "subscribe", "ref": topic, "topic": topic})
    while True:
        reply: dict[str, Any] = await socket.receive_json_from(timeout=3)
        if reply.get("type") == "reply" and reply.get("ref") == topic:
            return reply


async def told_unsubscribed(socket: Any, topic: str) -> None:
    """The next `unsubscribed` frame names `topic` (reason forbidden) and arrives within a second."""
    started = time.monotonic()
    frame = await socket.receive_json_from(timeout=1)
    while frame.get("type") != "unsubscribed":
        frame = await socket.receive_json_from(timeout=1)
    assert frame == {"type": "unsubscribed", "topic": topic, "reason": "forbidden"}
    assert time.monotonic() - started < 1.0


async def http(method: str, path: str, token: str, body: Any = None) -> int:
    call = getattr(AsyncClient(), method.lower())
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    if body is not None:
        kwargs |= {"data": json.dumps(body), "content_type": "application/json"}
    response = await call(f"/api/v1{path}", **kwargs)
    return int(response.status_code)


def form_data(response: Any) -> dict[str, Any]:
    """The POST an admin change page would send unchanged: its form's and inline formsets' values."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            key = form.add_prefix(name)
            widget = form.fields[name].widget
            if hasattr(widget, "decompress"):  # the admin's split date and time inputs
                for index, part in enumerate(widget.decompress(value)):
                    data[f"{key}_{index}"] = str(part)
            elif value is True:
                data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            else:
                data[key] = str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.initial_forms:
            add(form)
    return data


def admin_post(url: str, edit: Any) -> int:
    """Load an admin change page as an admin, apply `edit(data)` to its form values, post them back."""
    client = Client()
    client.force_login(make_user(user_type="admin"))
    data = form_data(client.get(url))
    edit(data)
    response = client.post(url, data)
    errors = response.context and [response.context["adminform"].form.errors, response.context["errors"]]
    assert response.status_code == 302, errors
    return int(response.status_code)


def managed_world() -> dict[str, Any]:
    landlord, manager = make_user(user_type="landlord"), make_user(user_type="property_manager")
    prop = make_property(owner=landlord, managers=(manager,))
    tenant = make_user()
    lease = make_lease(unit=make_unit(property=prop), tenants=(tenant,), status="active")
    return {
        "landlord": landlord,
        "manager": manager,
        "tenant": tenant,
        "prop": prop,
        "lease": lease,
        "property_topic": topics.property_changes(str(prop.pk)),
        "lease_topic": topics.lease_changes(str(lease.pk)),
    }


# --- HTTP ---------------------------------------------------------------------------------------


async def test_manager_removed_over_http_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    socket = await connect(await token_for(world["manager"]))
    assert (await subscribe(socket, world["property_topic"]))["ok"] is True

    path = f"/properties/{world['prop'].pk}/managers/{world['manager'].pk}"
    assert await http("DELETE", path, await token_for(world["landlord"])) == 204
    await told_unsubscribed(socket, world["property_topic"])
    assert (await subscribe(socket, world["property_topic"]))["ok"] is False


async def test_manager_added_over_http_may_subscribe_although_refused_before(connect) -> None:
    world = await sync_to_async(managed_world)()
    newcomer = await sync_to_async(make_user)(user_type="property_manager")
    socket = await connect(await token_for(newcomer))
    assert (await subscribe(socket, world["property_topic"]))["ok"] is False  # cached as "0" now

    path = f"/properties/{world['prop'].pk}/managers"
    assert await http("POST", path, await token_for(world["landlord"]), {"userId": str(newcomer.pk)}) == 201
    # The cached "0" went with the commit: no waiting for its TTL.
    assert (await subscribe(socket, world["property_topic"]))["ok"] is True


async def test_participant_removed_over_http_is_unsubscribed_at_once(connect) -> None:
    creator, member = await sync_to_async(make_user)(user_type="landlord"), await sync_to_async(make_user)()
    conversation = await sync_to_async(make_conversation)(participants=(creator, member), created_by=creator)
    topic = topics.chat_messages(str(conversation.pk))
    socket = await connect(await token_for(member))
    assert (await subscribe(socket, topic))["ok"] is True

    path = f"/conversations/{conversation.pk}/participants/{member.pk}"
    assert await http("DELETE", path, await token_for(creator)) == 204
    await told_unsubscribed(socket, topic)


async def test_tenant_dropped_from_a_lease_over_http_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    stays = await sync_to_async(make_user)()

    def second_tenant() -> str:
        tenant = Tenant.objects.create(user=stays, date_of_birth=datetime.date(1991, 2, 3), ssn_last_four="4321")
        LeaseTenant.objects.create(lease=world["lease"], tenant=tenant)
        return str(tenant.pk)

    stays_id = await sync_to_async(second_tenant)()
    socket = await connect(await token_for(world["tenant"]))
    assert (await subscribe(socket, world["lease_topic"]))["ok"] is True

    body = {"tenants": [{"tenantId": stays_id, "isPrimary": True}]}
    assert await http("PUT", f"/leases/{world['lease'].pk}/tenants", await token_for(world["landlord"]), body) == 200
    await told_unsubscribed(socket, world["lease_topic"])


# --- the admin site -----------------------------------------------------------------------------


async def test_manager_removed_in_the_property_admin_inline_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    socket = await connect(await token_for(world["manager"]))
    assert (await subscribe(socket, world["property_topic"]))["ok"] is True

    def delete_the_manager_row(data: dict[str, Any]) -> None:
        (row,) = [key for key, value in data.items() if key.endswith("-user") and value == str(world["manager"].pk)]
        data[row.removesuffix("-user") + "-DELETE"] = "on"

    url = reverse("admin:properties_property_change", args=[world["prop"].pk])
    await sync_to_async(admin_post)(url, delete_the_manager_row)
    await told_unsubscribed(socket, world["property_topic"])
    assert not await PropertyManager.objects.filter(user=world["manager"]).aexists()


async def test_tenant_taken_off_in_the_lease_admin_form_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    socket = await connect(await token_for(world["tenant"]))
    assert (await subscribe(socket, world["lease_topic"]))["ok"] is True

    def no_tenants(data: dict[str, Any]) -> None:
        data.pop("tenants", None)
        data.pop("primary_tenant", None)

    url = reverse("admin:leasing_lease_change", args=[world["lease"].pk])
    await sync_to_async(admin_post)(url, no_tenants)
    await told_unsubscribed(socket, world["lease_topic"])
    assert not await LeaseTenant.objects.filter(lease=world["lease"]).aexists()


async def test_participant_removed_in_the_conversation_admin_inline_is_unsubscribed_at_once(connect) -> None:
    creator, member = await sync_to_async(make_user)(user_type="landlord"), await sync_to_async(make_user)()
    conversation = await sync_to_async(make_conversation)(participants=(creator, member), created_by=creator)
    topic = topics.chat_messages(str(conversation.pk))
    socket = await connect(await token_for(member))
    assert (await subscribe(socket, topic))["ok"] is True

    def delete_the_member_row(data: dict[str, Any]) -> None:
        (row,) = [key for key, value in data.items() if key.endswith("-user") and value == str(member.pk)]
        data[row.removesuffix("-user") + "-DELETE"] = "on"

    await sync_to_async(admin_post)(
        reverse("admin:messaging_conversation_change", args=[conversation.pk]), delete_the_member_row
    )
    await told_unsubscribed(socket, topic)


async def test_user_demoted_in_the_user_admin_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    admin = await sync_to_async(make_user)(user_type="admin")
    socket = await connect(await token_for(admin))
    assert (await subscribe(socket, world["lease_topic"]))["ok"] is True

    def to_tenant(data: dict[str, Any]) -> None:
        data["user_type"] = "tenant"

    await sync_to_async(admin_post)(reverse("admin:accounts_user_change", args=[admin.pk]), to_tenant)
    await told_unsubscribed(socket, world["lease_topic"])


def admin_delete(url: str) -> None:
    """Confirm an admin delete page as an admin."""
    client = Client()
    client.force_login(make_user(user_type="admin"))
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302, response.status_code


async def test_manager_row_deleted_on_its_own_admin_page_is_unsubscribed_at_once(connect) -> None:
    world = await sync_to_async(managed_world)()
    socket = await connect(await token_for(world["manager"]))
    assert (await subscribe(socket, world["property_topic"]))["ok"] is True

    link = await PropertyManager.objects.aget(user=world["manager"])
    await sync_to_async(admin_delete)(reverse("admin:properties_propertymanager_delete", args=[link.pk]))
    await told_unsubscribed(socket, world["property_topic"])


async def test_lease_deleted_in_the_admin_unsubscribes_its_tenants_through_the_cascade(connect) -> None:
    world = await sync_to_async(managed_world)()
    socket = await connect(await token_for(world["tenant"]))
    assert (await subscribe(socket, world["lease_topic"]))["ok"] is True

    await sync_to_async(admin_delete)(reverse("admin:leasing_lease_delete", args=[world["lease"].pk]))
    await told_unsubscribed(socket, world["lease_topic"])


# --- what no longer happens ---------------------------------------------------------------------


async def test_a_bare_orm_delete_of_a_membership_tells_no_socket(connect) -> None:
    """Documented behaviour (issue 10): no model signal carries access changes any more.

    Deleting the row with the bare ORM (a shell, a script) leaves the open subscription and the
    cached decision as they were, until the cache's TTL (`PMS_PERMISSIONS_TTL_SECONDS`); code that
    writes membership rows outside the services must call `apps.common.access.access_changed`.
    The same on a Redis Cluster (its fills are guarded by the epoch of the key's slot).
    """
    world = await sync_to_async(managed_world)()
    token = await token_for(world["manager"])
    socket = await connect(token)
    assert (await subscribe(socket, world["property_topic"]))["ok"] is True

    await PropertyManager.objects.filter(user=world["manager"]).adelete()
    assert await socket.receive_nothing(timeout=1)
    cached = await get_redis().hget(keys.user_topic_access(str(world["manager"].pk)), world["property_topic"])
    assert cached == "1"
    # A new socket's check: the cached "1" lets it in until the TTL.
    assert (await subscribe(await connect(token), world["property_topic"]))["ok"] is True
