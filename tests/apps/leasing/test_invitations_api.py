"""Lease invitations over HTTP: invite, accept, decline, revoke, expiry, every error code, and an
invited (not yet accepted) tenant sees nothing of the lease, its unit, property or charges."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.finance.models import Transaction
from apps.leasing import invitations
from apps.leasing.models import InvitationStatus, Lease, LeaseDocument, LeaseInvitation, LeaseTenant, Tenant
from apps.leasing.services import NOT_A_TENANT_USER
from tests.apps.api_world import Api, World
from tests.factories import make_lease, make_unit, make_user

pytestmark = pytest.mark.django_db

PROFILE = {
    "dateOfBirth": "1988-08-08",
    "ssnLastFour": "4321",
    "income": "61000.00",
    "backgroundCheckStatus": "approved",
}


@pytest.fixture(autouse=True)
def charge(world: World) -> Transaction:
    """A charge on the world's lease, which an invited tenant must not see."""
    return Transaction.objects.create(
        lease=lease_of(world), property=world.prop, transaction_type="rent", amount=Decimal("1450.00")
    )


def lease_of(world: World) -> Lease:
    return Lease.objects.get(unit=world.unit)


def invite(api: Api, lease: Lease, user: Any, **body: Any) -> Any:
    return api.post(f"/leases/{lease.pk}/invitations", {"userId": str(user.pk), **body})


def invited(world: World, client: Client, who: str = "manager", **body: Any) -> tuple[Any, dict[str, Any]]:
    """A new tenant-type user and their pending invitation to the world's active lease."""
    newcomer = make_user(first_name="Nia", last_name="Newcomer")
    response = invite(world.api(client, who), lease_of(world), newcomer, **body)
    assert response.status_code == 201, response.content
    return newcomer, response.json()


def sees_of_the_lease(world: World, client: Client, user: Any) -> dict[str, Any]:
    """What `user` gets from every endpoint that shows the world's lease or what hangs off it."""
    lease, api = lease_of(world), world.api_for(client, user)
    charge = Transaction.objects.get(lease=lease)
    return {
        "leases": [item["id"] for item in api.get("/leases").json()["items"]],
        "lease": api.get(f"/leases/{lease.pk}").status_code,
        "lease_tenants": api.get(f"/leases/{lease.pk}/tenants").status_code,
        "documents": api.get(f"/leases/{lease.pk}/documents").status_code,
        "unit": api.get(f"/units/{world.unit.pk}").status_code,
        "property": api.get(f"/properties/{world.prop.pk}").status_code,
        "properties": [item["id"] for item in api.get("/properties").json()["items"]],
        "transactions": [item["id"] for item in api.get("/transactions").json()["items"]],
        "transaction": api.get(f"/transactions/{charge.pk}").status_code,
        "recent": [item["id"] for item in api.get("/transactions/recent").json()["items"]],
    }


NOTHING = {
    "leases": [],
    "lease": 404,
    "lease_tenants": 404,
    "documents": 404,
    "unit": 404,
    "property": 404,
    "properties": [],
    "transactions": [],
    "transaction": 404,
    "recent": [],
}


def test_invite_accept_flow_and_the_invited_tenant_sees_nothing_until_accepting(
    world: World, client: Client, charge: Transaction
) -> None:
    lease = lease_of(world)
    LeaseDocument.objects.create(lease=lease, document_type="lease", document_url="https://files.test/lease.pdf")
    newcomer, invitation = invited(world, client, tenant=PROFILE)
    assert invitation["status"] == "pending" and invitation["invitedBy"] == str(world.manager.pk)
    assert invitation["leaseId"] == str(lease.pk) and invitation["isPrimary"] is False
    assert invitation["lease"] == {
        "id": str(lease.pk),
        "propertyName": world.prop.property_name,
        "unitNumber": world.unit.unit_number,
        "startDate": "2026-01-01",
        "endDate": "2026-12-31",
        "monthlyRent": "1450.00",
    }
    assert not LeaseTenant.objects.filter(lease=lease, tenant__user=newcomer).exists()
    assert not Tenant.objects.filter(user=newcomer).exists()

    mine = world.api_for(client, newcomer).get("/invitations").json()
    assert [item["id"] for item in mine["items"]] == [invitation["id"]]
    assert sees_of_the_lease(world, client, newcomer) == NOTHING

    accepted = world.api_for(client, newcomer).post(f"/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "accepted" and accepted.json()["respondedAt"] is not None

    record = Tenant.objects.get(user=newcomer)
    assert (record.ssn_last_four, record.income, record.background_check_status) == (
        "4321",
        Decimal("61000.00"),
        "approved",
    )
    assert str(record.date_of_birth) == "1988-08-08"
    assert LeaseTenant.objects.get(lease=lease, tenant=record).is_primary is False
    seen = sees_of_the_lease(world, client, newcomer)
    assert seen["leases"] == [str(lease.pk)] and seen["transactions"] == [str(charge.pk)]
    assert {seen[name] for name in ("lease", "lease_tenants", "documents", "unit", "property", "transaction")} == {200}
    listed = world.api(client, "landlord").get(f"/leases/{lease.pk}/invitations").json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(invitation["id"], "accepted")]


def test_post_tenants_by_staff_invites_with_202_and_admins_attach_directly(world: World, client: Client) -> None:
    lease = lease_of(world)
    newcomer = make_user()
    body = {"userId": str(newcomer.pk), "leaseId": str(lease.pk), **PROFILE}
    response = world.api(client, "landlord").post("/tenants", body)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and response.json()["invitedBy"] == str(world.landlord.pk)
    stored = LeaseInvitation.objects.get(pk=response.json()["id"])
    assert stored.tenant_profile is not None and stored.tenant_profile["ssnLastFour"] == "4321"
    assert not Tenant.objects.filter(user=newcomer).exists()
    again = world.api(client, "manager").post("/tenants", body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    direct = make_user()
    admin = world.api(client, "admin").post("/tenants", {**body, "userId": str(direct.pk)})
    assert admin.status_code == 201, admin.content
    assert LeaseTenant.objects.filter(lease=lease, tenant__user=direct).exists()
    assert not LeaseInvitation.objects.filter(invited_user=direct).exists()


def test_openapi_documents_the_invitation_answer_of_post_tenants(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    responses = schema["paths"]["/api/v1/tenants"]["post"]["responses"]
    assert responses["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InvitationOut"}
    assert responses["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TenantOut"}
    paths = schema["paths"]
    assert {
        "/api/v1/invitations",
        "/api/v1/invitations/{invitation_id}/accept",
        "/api/v1/invitations/{invitation_id}/decline",
        "/api/v1/leases/{lease_id}/invitations",
        "/api/v1/leases/{lease_id}/invitations/{invitation_id}/revoke",
    } <= set(paths)


def test_accept_without_a_record_needs_a_profile_and_reuses_an_existing_record(world: World, client: Client) -> None:
    newcomer, invitation = invited(world, client)
    me = world.api_for(client, newcomer)
    missing = me.post(f"/invitations/{invitation['id']}/accept")
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"] == [
        {"field": "body.payload.tenant", "reason": invitations.PROFILE_REQUIRED}
    ]
    assert LeaseInvitation.objects.get(pk=invitation["id"]).status == "pending"  # nothing written
    # A tenant cannot set their own screening results: the field is not part of their profile.
    own = {"dateOfBirth": "1999-09-09", "ssnLastFour": "0009", "backgroundCheckStatus": "approved"}
    assert me.post(f"/invitations/{invitation['id']}/accept", {"tenant": own}).status_code == 200
    record = Tenant.objects.get(user=newcomer)
    assert (str(record.date_of_birth), record.background_check_status) == ("1999-09-09", "not_submitted")

    # The other tenant already has a record (on another landlord's lease): it is reused, not copied.
    existing = world.tenant_record(world.other_tenant)
    second = invite(world.api(client, "manager"), lease_of(world), world.other_tenant, tenant=PROFILE).json()
    assert world.api(client, "other_tenant").post(f"/invitations/{second['id']}/accept").status_code == 200
    assert list(Tenant.objects.filter(user=world.other_tenant)) == [existing]
    assert LeaseTenant.objects.filter(lease=lease_of(world), tenant=existing).exists()


def test_accepting_a_primary_invitation_moves_the_primary(world: World, client: Client) -> None:
    newcomer, invitation = invited(world, client, isPrimary=True, tenant=PROFILE)
    assert invitation["isPrimary"] is True
    assert world.api_for(client, newcomer).post(f"/invitations/{invitation['id']}/accept").status_code == 200
    primaries = LeaseTenant.objects.filter(lease=lease_of(world), is_primary=True)
    assert [link.tenant.user_id for link in primaries] == [newcomer.pk]


def test_decline_then_every_answer_is_a_conflict(world: World, client: Client) -> None:
    newcomer, invitation = invited(world, client, tenant=PROFILE)
    me = world.api_for(client, newcomer)
    declined = me.post(f"/invitations/{invitation['id']}/decline")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    for action in ("accept", "decline"):
        again = me.post(f"/invitations/{invitation['id']}/{action}")
        assert again.status_code == 409
        assert again.json()["error"] == {
            "code": "conflict",
            "status": "declined",
            "message": invitations.NOT_PENDING.format(status="declined"),
        }
    revoke = world.api(client, "manager").post(f"/leases/{lease_of(world).pk}/invitations/{invitation['id']}/revoke")
    assert revoke.status_code == 409
    assert not Tenant.objects.filter(user=newcomer).exists()
    # Declined is not pending: the user may be invited again.
    assert invite(world.api(client, "manager"), lease_of(world), newcomer).status_code == 201


def test_revoke_by_the_leases_staff_only_and_a_revoked_invitation_cannot_be_accepted(
    world: World, client: Client
) -> None:
    newcomer, invitation = invited(world, client, tenant=PROFILE)
    path = f"/leases/{lease_of(world).pk}/invitations/{invitation['id']}/revoke"
    assert world.api(client, "tenant").post(path).status_code == 403
    assert world.api(client, "other_manager").post(path).status_code == 404
    assert world.api_for(client, newcomer).post(path).status_code == 403
    wrong_lease = f"/leases/{Lease.objects.get(unit=world.other_unit).pk}/invitations/{invitation['id']}/revoke"
    assert world.api(client, "admin").post(wrong_lease).status_code == 404
    revoked = world.api(client, "landlord").post(path)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    accept = world.api_for(client, newcomer).post(f"/invitations/{invitation['id']}/accept")
    assert accept.status_code == 409 and accept.json()["error"]["status"] == "revoked"
    assert world.api(client, "admin").post(path).status_code == 409
    assert sees_of_the_lease(world, client, newcomer) == NOTHING


def test_someone_elses_invitation_answers_404_like_an_unknown_id(world: World, client: Client) -> None:
    _, invitation = invited(world, client, tenant=PROFILE)
    unknown = "00000000-0000-0000-0000-00000000abcd"
    for who in ("tenant", "other_tenant", "admin", "manager"):
        for action in ("accept", "decline"):
            theirs = world.api(client, who).post(f"/invitations/{invitation['id']}/{action}")
            nobody = world.api(client, who).post(f"/invitations/{unknown}/{action}")
            assert theirs.status_code == nobody.status_code == 404
            assert theirs.json() == nobody.json()
        assert world.api(client, who).get("/invitations").json()["items"] == []
    assert LeaseInvitation.objects.get(pk=invitation["id"]).status == "pending"


def test_invite_errors(world: World, client: Client) -> None:
    lease, manager = lease_of(world), world.api(client, "manager")
    for user in (world.landlord, world.admin, make_user(is_active=False)):
        refused = invite(manager, lease, user)
        assert refused.status_code == 422, user.user_type
        assert refused.json()["error"]["fields"] == [{"field": "body.payload.userId", "reason": NOT_A_TENANT_USER}]
    unknown = manager.post(f"/leases/{lease.pk}/invitations", {"userId": "00000000-0000-0000-0000-000000000001"})
    assert unknown.status_code == 422
    on_lease = invite(manager, lease, world.tenant)
    assert on_lease.status_code == 409 and on_lease.json()["error"]["message"] == invitations.ALREADY_ON_LEASE
    newcomer, first = invited(world, client)
    duplicate = invite(world.api(client, "landlord"), lease, newcomer)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == {
        "code": "conflict",
        "message": invitations.ALREADY_INVITED,
        "invitationId": first["id"],
    }
    assert invite(world.api(client, "tenant"), lease, make_user()).status_code == 403
    assert invite(world.api(client, "other_manager"), lease, make_user()).status_code == 404
    assert world.api(client, "tenant").get(f"/leases/{lease.pk}/invitations").status_code == 403
    assert world.api(client, "other_landlord").get(f"/leases/{lease.pk}/invitations").status_code == 404
    bad = manager.post(f"/leases/{lease.pk}/invitations", {"userId": str(newcomer.pk), "tenant": {"ssnLastFour": "1"}})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["fields"]} >= {"body.payload.tenant.ssnLastFour"}
    assert LeaseInvitation.objects.filter(lease=lease).count() == 1


def test_expiry_by_the_clock(world: World, client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.LEASE_INVITATION_TTL_SECONDS = 3600
    newcomer, invitation = invited(world, client, tenant=PROFILE)
    stored = LeaseInvitation.objects.get(pk=invitation["id"])
    assert stored.expires_at - stored.created_at == timedelta(hours=1)
    me = world.api_for(client, newcomer)
    start = timezone.now()
    monkeypatch.setattr(invitations, "now", lambda: start + timedelta(minutes=59))
    assert me.get("/invitations", status="pending").json()["count"] == 1

    monkeypatch.setattr(invitations, "now", lambda: start + timedelta(hours=1, seconds=1))
    assert me.get("/invitations", status="pending").json()["count"] == 0
    assert [item["status"] for item in me.get("/invitations", status="expired").json()["items"]] == ["expired"]
    assert stored.status == "pending"  # expiry is read from the clock; written when someone acts
    late = me.post(f"/invitations/{invitation['id']}/accept")
    assert late.status_code == 409 and late.json()["error"]["status"] == "expired"
    assert LeaseInvitation.objects.get(pk=invitation["id"]).status == InvitationStatus.EXPIRED
    assert not Tenant.objects.filter(user=newcomer).exists()
    again = invite(world.api(client, "manager"), lease_of(world), newcomer)
    assert again.status_code == 201 and again.json()["status"] == "pending"


def test_expired_pending_invitation_makes_room_for_a_new_one(
    world: World, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    newcomer, first = invited(world, client)
    later = timezone.now() + timedelta(days=8)  # past the default 7 days
    monkeypatch.setattr(invitations, "now", lambda: later)
    second = invite(world.api(client, "manager"), lease_of(world), newcomer)
    assert second.status_code == 201
    statuses = dict(LeaseInvitation.objects.filter(invited_user=newcomer).values_list("pk", "status"))
    assert {str(pk): status for pk, status in statuses.items()} == {
        first["id"]: "expired",
        second.json()["id"]: "pending",
    }


def test_staff_cannot_put_a_newcomer_on_a_lease_but_admins_can(world: World, client: Client) -> None:
    lease = lease_of(world)
    # A tenant the manager may see (on another lease of the same property) but not on this lease.
    neighbour = make_user()
    make_lease(unit=make_unit(property=world.prop), tenants=(neighbour,))
    body = {
        "tenants": [
            {"tenantId": str(world.tenant_record(world.tenant).pk), "isPrimary": True},
            {"tenantId": str(world.tenant_record(neighbour).pk)},
        ]
    }
    refused = world.api(client, "manager").put(f"/leases/{lease.pk}/tenants", body)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == [
        {"field": "body.payload.tenants.1.tenantId", "reason": invitations.NOT_ON_LEASE}
    ]
    assert not LeaseTenant.objects.filter(lease=lease, tenant__user=neighbour).exists()
    assert world.api(client, "admin").put(f"/leases/{lease.pk}/tenants", body).status_code == 200
    assert LeaseTenant.objects.filter(lease=lease, tenant__user=neighbour).exists()


def test_lists_filter_by_status_and_page(world: World, client: Client) -> None:
    lease = lease_of(world)
    made = [invited(world, client)[1]["id"] for _ in range(3)]
    world.api(client, "manager").post(f"/leases/{lease.pk}/invitations/{made[0]}/revoke")
    page = world.api(client, "manager").get(f"/leases/{lease.pk}/invitations", limit=2).json()
    assert page["count"] == 3 and [item["id"] for item in page["items"]] == made[:0:-1] and page["nextOffset"] == 2
    pending = world.api(client, "admin").get(f"/leases/{lease.pk}/invitations", status="pending").json()
    assert {item["id"] for item in pending["items"]} == set(made[1:])
    revoked = world.api(client, "landlord").get(f"/leases/{lease.pk}/invitations", status="revoked").json()
    assert [item["id"] for item in revoked["items"]] == [made[0]]
    assert world.api(client, "manager").get("/invitations", status="sideways").status_code == 422


def test_admin_lists_shows_and_revokes_invitations_but_adds_none(world: World, client: Client) -> None:
    from django.urls import reverse

    newcomer, invitation = invited(world, client, tenant=PROFILE)
    _, other = invited(world, client)
    LeaseInvitation.objects.filter(pk=other["id"]).update(status="declined")
    site = Client()
    site.force_login(world.admin)
    changelist = reverse("admin:leasing_leaseinvitation_changelist")
    page = site.get(changelist, {"q": newcomer.email})
    assert page.status_code == 200 and newcomer.email in page.content.decode()
    assert site.get(reverse("admin:leasing_leaseinvitation_change", args=[invitation["id"]])).status_code == 200
    assert site.get(reverse("admin:leasing_leaseinvitation_add")).status_code == 403
    done = site.post(changelist, {"action": "revoke", "_selected_action": [invitation["id"], other["id"]]})
    assert done.status_code == 302
    statuses = dict(LeaseInvitation.objects.values_list("pk", "status"))
    assert {str(pk): status for pk, status in statuses.items()} == {
        invitation["id"]: "revoked",
        other["id"]: "declined",
    }


def test_a_user_who_is_no_longer_a_tenant_cannot_accept(world: World, client: Client) -> None:
    newcomer, invitation = invited(world, client, tenant=PROFILE)
    me = world.api_for(client, newcomer)  # signed in while still a tenant
    newcomer.user_type = "landlord"
    newcomer.save()
    refused = me.post(f"/invitations/{invitation['id']}/accept")
    assert refused.status_code == 409 and refused.json()["error"]["message"] == invitations.NO_LONGER_A_TENANT
    assert LeaseInvitation.objects.get(pk=invitation["id"]).status == "pending"
    assert not Tenant.objects.filter(user=newcomer).exists()
