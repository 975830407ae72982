"""The demo world's data: who, where, what (`manage.py seed_demo` builds it through the services).

The web app's guide and tests may read the logins from here (`logins()`, `DEMO_PASSWORD`).
"""

from dataclasses import dataclass

from apps.accounts.models import UserType
from apps.maintenance.models import MaintenanceStatus

DOMAIN = "demo.pms.local"
DEMO_PASSWORD = "demo-pms-2026"
WORKER_ROLE = "maintenance_staff"

LANDLORD = ("landlord", "Margaret", "Chen", UserType.LANDLORD)
MANAGERS = [("manager.oak", "Diego", "Ramirez"), ("manager.harbor", "Priya", "Nair")]
WORKER = ("maintenance", "Sam", "Okafor")
# (email local part, first, last, property index, unit number, months since the lease started)
TENANTS = [
    ("ana", "Ana", "Souza", 0, "101", 10),
    ("ben", "Ben", "Carter", 0, "102", 7),
    ("chloe", "Chloe", "Dubois", 0, "103", 4),
    ("dev", "Dev", "Patel", 0, "201", 11),
    ("emma", "Emma", "Lindqvist", 0, "202", 2),
    ("farah", "Farah", "Haddad", 1, "A", 9),
    ("gabe", "Gabe", "Moreno", 1, "B", 5),
    ("hana", "Hana", "Kim", 1, "C", 3),
]
PROPERTIES = [
    {
        "propertyName": "Oakwood Apartments",
        "streetAddress": "1420 SE Oak Street",
        "city": "Portland",
        "state": "OR",
        "zipCode": "97214",
        "propertyType": "apartment",
        "yearBuilt": 1998,
        "squareFootage": 9800,
    },
    {
        "propertyName": "Harbor View Townhomes",
        "streetAddress": "88 Marina Way",
        "city": "Tacoma",
        "state": "WA",
        "zipCode": "98402",
        "propertyType": "multi_family",
        "yearBuilt": 2012,
        "squareFootage": 6400,
    },
]
# Per property: (unit number, bedrooms, bathrooms, square feet, monthly rent)
UNITS = [
    [
        ("101", 1, "1.0", 640, "1450.00"),
        ("102", 2, "1.0", 860, "1795.00"),
        ("103", 2, "2.0", 910, "1895.00"),
        ("104", 1, "1.0", 620, "1425.00"),
        ("201", 2, "1.0", 860, "1825.00"),
        ("202", 3, "2.0", 1120, "2350.00"),
        ("203", 1, "1.0", 640, "1475.00"),
        ("204", 2, "2.0", 910, "1925.00"),
    ],
    [
        ("A", 3, "2.5", 1450, "2650.00"),
        ("B", 3, "2.5", 1450, "2650.00"),
        ("C", 2, "1.5", 1180, "2295.00"),
        ("D", 2, "1.5", 1180, "2295.00"),
    ],
]
# (tenant, category, priority, description, status it ends in, vendor index for a work order or None)
REQUESTS = [
    ("ana", "plumbing", "medium", "The kitchen faucet drips all night.", MaintenanceStatus.SUBMITTED, None),
    ("ben", "hvac", "high", "No heat in the back bedroom since Sunday.", MaintenanceStatus.IN_PROGRESS, 1),
    ("dev", "appliance", "low", "Dishwasher leaves standing water.", MaintenanceStatus.ASSIGNED, 0),
    (
        "farah",
        "plumbing",
        "emergency",
        "Water drips through the bathroom ceiling.",
        MaintenanceStatus.IN_PROGRESS,
        None,
    ),
    ("gabe", "general", "medium", "Front door lock sticks and is hard to turn.", MaintenanceStatus.SUBMITTED, None),
    ("chloe", "electrical", "low", "Hallway smoke detector chirps (battery).", MaintenanceStatus.COMPLETED, None),
]
VENDORS = [
    {"company_name": "Rose City Plumbing", "contact_name": "Tom Reyes", "phone": "503-555-0142",
     "service_category": "plumbing", "is_preferred": True},
    {"company_name": "Cascade Heating & Air", "contact_name": "Lisa Wong", "phone": "503-555-0177",
     "service_category": "hvac", "is_preferred": False},
]  # fmt: skip
# (tenant, subject, [(who: "t" tenant / "m" manager, text)])
CONVERSATIONS = [
    ("ana", "Faucet repair", [
        ("t", "Hi Diego, the kitchen faucet keeps dripping. I filed a request this morning."),
        ("m", "Thanks Ana, I saw it. Would Thursday afternoon work for a plumber?"),
        ("t", "Thursday after 2 pm is perfect."),
        ("m", "Booked. I'll send the confirmation once they reply."),
    ]),
    ("ben", "Heating", [
        ("t", "The back bedroom is freezing, the radiator is cold."),
        ("m", "Sorry about that. Cascade Heating is coming tomorrow at 9."),
        ("t", "Great, I'll be home."),
    ]),
    ("farah", "Ceiling leak", [
        ("t", "There is water coming through the bathroom ceiling!"),
        ("m", "On it. Please turn off the water to the upstairs bathroom if you can; Sam is on his way."),
        ("t", "Done, thanks for the quick reply."),
    ]),
    ("gabe", "Parking", [
        ("t", "Is there a guest parking spot for this weekend?"),
        ("m", "Yes, spot G2 is free Saturday and Sunday. Leave a note on the dashboard."),
    ]),
]  # fmt: skip

# Tenants who have read their conversation to its end (the others have unread replies waiting).
READ_BY_TENANT = frozenset({"ana", "farah"})


def email(local: str) -> str:
    return f"{local}@{DOMAIN}"


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    name: str


def logins() -> list[Login]:
    """The demo accounts, in the order they are printed."""
    found = [Login("landlord", email(LANDLORD[0]), f"{LANDLORD[1]} {LANDLORD[2]}")]
    for (local, first, last), prop in zip(MANAGERS, PROPERTIES, strict=True):
        found.append(Login(f"manager of {prop['propertyName']}", email(local), f"{first} {last}"))
    found.append(Login("maintenance worker", email(WORKER[0]), f"{WORKER[1]} {WORKER[2]}"))
    for local, first, last, prop_index, unit, _ in TENANTS:
        found.append(Login(f"tenant, {PROPERTIES[prop_index]['propertyName']} {unit}", email(local), f"{first} {last}"))
    return found
