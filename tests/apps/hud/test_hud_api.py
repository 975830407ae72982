"""HUD over HTTP: reference data (admin writes), property programs (staff), applications and forms."""

import datetime

import pytest
from django.test import Client

from apps.hud.models import HousingAuthority, HudApplication, HudForm, HudProgram, PropertyHudProgram
from apps.hud.services import ADMINS_ONLY, APPLICANT_EDITS_DRAFT_ONLY, IN_USE, REJECTION_NEEDS_REASON, STAFF_DECIDE
from tests.apps.api_world import World

pytestmark = pytest.mark.django_db


def make_program(code: str = "S8", name: str = "Housing Choice Voucher") -> HudProgram:
    return HudProgram.objects.create(program_name=name, program_code=code, required_forms=["HUD-52517"])


def make_authority(name: str = "Springfield HA", state: str = "IL") -> HousingAuthority:
    return HousingAuthority.objects.create(name=name, state=state)


def make_application(world: World, who: str = "tenant", **fields: object) -> HudApplication:
    fields.setdefault("application_date", datetime.date(2026, 2, 1))
    return HudApplication.objects.create(tenant=world.tenant_record(getattr(world, who)), **fields)


@pytest.mark.parametrize("who", ["tenant", "landlord", "other_manager"])
def test_reference_data_read_by_everyone_written_by_admins(world: World, client: Client, who: str) -> None:
    program, authority = make_program(), make_authority()
    api = world.api(client, who)
    assert [p["programCode"] for p in api.get("/hud-programs").json()["items"]] == ["S8"]
    assert api.get(f"/hud-programs/{program.pk}").json()["requiredForms"] == ["HUD-52517"]
    assert api.get(f"/housing-authorities/{authority.pk}").json()["state"] == "IL"
    for response in (
        api.post("/hud-programs", {"programName": "X", "programCode": "X"}),
        api.patch(f"/hud-programs/{program.pk}", {"description": "x"}),
        api.delete(f"/hud-programs/{program.pk}"),
        api.post("/housing-authorities", {"name": "X", "state": "IL"}),
        api.patch(f"/housing-authorities/{authority.pk}", {"county": "x"}),
        api.delete(f"/housing-authorities/{authority.pk}"),
    ):
        assert response.status_code == 403 and response.json()["error"]["message"] == ADMINS_ONLY


def test_admin_crud_of_reference_data_and_filters(world: World, client: Client) -> None:
    admin = world.api(client, "admin")
    created = admin.post(
        "/hud-programs",
        {"programName": "Project-Based", "programCode": "PBV", "requiredForms": {"forms": ["HUD-50058"]}},
    )
    assert created.status_code == 201, created.content
    make_program()
    assert [p["programCode"] for p in admin.get("/hud-programs", programCode="pbv").json()["items"]] == ["PBV"]
    patched = admin.patch(f"/hud-programs/{created.json()['id']}", {"description": "Tied to a unit"})
    assert patched.json()["description"] == "Tied to a unit"
    ha = admin.post("/housing-authorities", {"name": "Chicago HA", "state": "IL", "contactEmail": "a@cha.test"})
    assert ha.status_code == 201
    make_authority("Austin HA", "TX")
    assert [a["name"] for a in admin.get("/housing-authorities", state="il").json()["items"]] == ["Chicago HA"]
    assert admin.get("/housing-authorities", limit=1).json()["nextOffset"] == 1
    HudApplication.objects.create(
        tenant=world.tenant_record(world.tenant),
        authority_id=ha.json()["id"],
        application_date=datetime.date(2026, 1, 1),
    )
    in_use = admin.delete(f"/housing-authorities/{ha.json()['id']}")
    assert in_use.status_code == 409 and in_use.json()["error"]["message"] == IN_USE
    assert admin.delete(f"/hud-programs/{created.json()['id']}").status_code == 204
    assert admin.get(f"/hud-programs/{created.json()['id']}").status_code == 404


@pytest.mark.parametrize(
    ("who", "status"), [("landlord", 200), ("manager", 200), ("admin", 200), ("tenant", 404), ("other_manager", 404)]
)
def test_property_programs_for_its_staff_only(world: World, client: Client, who: str, status: int) -> None:
    program, authority = make_program(), make_authority()
    api = world.api(client, who)
    path = f"/properties/{world.prop.pk}/hud-programs"
    body = {
        "programs": [
            {
                "programId": str(program.pk),
                "authorityId": str(authority.pk),
                "status": "approved",
                "approvalDate": "2026-01-15",
            }
        ]
    }
    put = api.put(path, body)
    assert put.status_code == status
    assert api.get(path).status_code == status
    if status == 200:
        assert put.json() == [
            {
                "programId": str(program.pk),
                "programName": program.program_name,
                "programCode": "S8",
                "authorityId": str(authority.pk),
                "approvalDate": "2026-01-15",
                "expirationDate": None,
                "status": "approved",
            }
        ]
        assert api.put(path, {"programs": []}).json() == []
    assert PropertyHudProgram.objects.filter(property=world.prop).count() == 0


def test_property_programs_validate_references(world: World, client: Client) -> None:
    program = make_program()
    api = world.api(client, "manager")
    path = f"/properties/{world.prop.pk}/hud-programs"
    twice = api.put(path, {"programs": [{"programId": str(program.pk)}, {"programId": str(program.pk)}]})
    assert (
        twice.status_code == 422 and twice.json()["error"]["fields"][0]["field"] == "body.payload.programs.1.programId"
    )
    unknown = api.put(path, {"programs": [{"programId": str(world.prop.pk)}]})
    assert unknown.status_code == 422


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("tenant", True),
        ("landlord", True),
        ("manager", True),
        ("admin", True),
        ("other_manager", False),
        ("other_tenant", False),
    ],
)
def test_applications_and_forms_visible_to_applicant_their_staff_and_admins(
    world: World, client: Client, who: str, visible: bool
) -> None:
    application = make_application(world)
    form = HudForm.objects.create(application=application, form_type="income")
    api = world.api(client, who)
    listed = [a["id"] for a in api.get("/hud-applications").json()["items"]]
    assert (str(application.pk) in listed) is visible
    expected = 200 if visible else 404
    assert api.get(f"/hud-applications/{application.pk}").status_code == expected
    assert api.get(f"/hud-applications/{application.pk}/forms").status_code == expected
    if not visible:
        assert api.patch(f"/hud-applications/{application.pk}", {"notes": "x"}).status_code == 404
        assert api.post(f"/hud-applications/{application.pk}/forms", {"formType": "x"}).status_code == 404
        assert api.patch(f"/hud-forms/{form.pk}", {"formNumber": "x"}).status_code == 404


def test_tenant_applies_for_themselves_and_submits(world: World, client: Client) -> None:
    program = make_program()
    tenant = world.api(client, "tenant")
    created = tenant.post("/hud-applications", {"programId": str(program.pk), "notes": "Family of 3"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["tenantId"] == str(world.tenant_record(world.tenant).pk) and body["status"] == "draft"
    assert body["applicationDate"] is not None and body["submissionDate"] is None
    path = f"/hud-applications/{body['id']}"
    stolen = tenant.post("/hud-applications", {"tenantId": str(world.tenant_record(world.other_tenant).pk)})
    assert stolen.status_code == 422
    approve = tenant.patch(path, {"status": "approved"})
    assert approve.status_code == 403 and approve.json()["error"]["message"] == STAFF_DECIDE
    assert tenant.patch(path, {"voucherAmount": "900"}).status_code == 403
    submitted = tenant.patch(path, {"status": "submitted"}).json()
    assert submitted["status"] == "submitted" and submitted["submissionDate"] is not None
    late = tenant.patch(path, {"notes": "more"})
    assert late.status_code == 403 and late.json()["error"]["message"] == APPLICANT_EDITS_DRAFT_ONLY


def test_staff_review_and_decide_along_the_transitions(world: World, client: Client) -> None:
    application = make_application(world)
    manager = world.api(client, "manager")
    path = f"/hud-applications/{application.pk}"
    skipped = manager.patch(path, {"status": "approved"})
    assert skipped.status_code == 409
    assert manager.patch(path, {"status": "submitted"}).json()["submissionDate"] is not None
    review = manager.patch(path, {"status": "under_review"}).json()
    assert review["status"] == "under_review" and review["decisionDate"] is None
    decided = manager.patch(
        path, {"status": "approved", "voucherAmount": "875.5", "voucherStartDate": "2026-03-01"}
    ).json()
    assert decided["decisionDate"] is not None and decided["voucherAmount"] == "875.50"
    assert manager.patch(path, {"status": "denied"}).status_code == 409
    stored = HudApplication.objects.get(pk=application.pk)
    assert stored.status == "approved" and stored.decision_date is not None and stored.submission_date is not None


def test_staff_create_for_their_tenants_only(world: World, client: Client) -> None:
    manager = world.api(client, "manager")
    assert manager.post("/hud-applications", {}).status_code == 422
    mine = manager.post("/hud-applications", {"tenantId": str(world.tenant_record(world.tenant).pk)})
    assert mine.status_code == 201
    other = manager.post("/hud-applications", {"tenantId": str(world.tenant_record(world.other_tenant).pk)})
    assert other.status_code == 422
    admin = world.api(client, "admin").post(
        "/hud-applications", {"tenantId": str(world.tenant_record(world.other_tenant).pk)}
    )
    assert admin.status_code == 201


def test_application_filters_and_pages(world: World, client: Client) -> None:
    a = make_application(world, status="draft", application_date=datetime.date(2026, 1, 1))
    b = make_application(world, status="submitted", application_date=datetime.date(2026, 2, 1))
    c = make_application(world, "other_tenant", status="submitted")
    admin = world.api(client, "admin")
    ids = lambda **p: [x["id"] for x in admin.get("/hud-applications", **p).json()["items"]]  # noqa: E731
    assert set(ids()) == {str(a.pk), str(b.pk), str(c.pk)}
    assert ids(tenantId=str(world.tenant_record(world.tenant).pk)) == [str(b.pk), str(a.pk)]
    assert set(ids(status="submitted")) == {str(b.pk), str(c.pk)}
    page = admin.get("/hud-applications", limit=2, offset=2).json()
    assert page["count"] == 3 and len(page["items"]) == 1 and page["nextOffset"] is None
    assert admin.get("/hud-applications", status="nope").status_code == 422


def test_forms_filed_by_applicant_decided_by_staff(world: World, client: Client) -> None:
    application = make_application(world)
    tenant, manager = world.api(client, "tenant"), world.api(client, "manager")
    created = tenant.post(f"/hud-applications/{application.pk}/forms", {"formType": "income", "formNumber": "HUD-9886"})
    assert created.status_code == 201 and created.json()["status"] == "pending"
    form_path = f"/hud-forms/{created.json()['id']}"
    assert tenant.patch(form_path, {"status": "accepted"}).status_code == 403
    submitted = tenant.patch(form_path, {"status": "submitted", "documentUrl": "https://docs.test/9886.pdf"})
    assert submitted.status_code == 200 and submitted.json()["submittedAt"] is not None
    assert tenant.patch(form_path, {"formNumber": "x"}).status_code == 403
    no_reason = manager.patch(form_path, {"status": "rejected"})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["message"] == REJECTION_NEEDS_REASON
    rejected = manager.patch(form_path, {"status": "rejected", "rejectionReason": "Unsigned"})
    assert rejected.json()["status"] == "rejected" and rejected.json()["rejectionReason"] == "Unsigned"
    listed = tenant.get(f"/hud-applications/{application.pk}/forms").json()
    assert listed["count"] == 1 and listed["items"][0]["rejectionReason"] == "Unsigned"
    application.status = "approved"
    application.save()
    assert tenant.post(f"/hud-applications/{application.pk}/forms", {"formType": "late"}).status_code == 409
