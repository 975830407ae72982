"""Create a local admin account when none exists and print how to sign in (development only)."""

import secrets
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.models import User, UserType

DEV_ADMIN_EMAIL = "admin@pms.local"


class Command(BaseCommand):
    help = "Ensure a development admin exists; its password is kept in --password-file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password-file", required=True)
        parser.add_argument("--email", default=DEV_ADMIN_EMAIL)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["password_file"])
        email = options["email"]
        if path.exists() and User.objects.filter(email=email).exists():
            password = path.read_text().strip()
        elif User.objects.filter(user_type=UserType.ADMIN).exclude(email=email).exists():
            self.stdout.write("[pms] an admin account already exists; no development admin created")
            return
        else:
            password = secrets.token_urlsafe(12)
            user = User.objects.filter(email=email).first() or User(
                email=email, first_name="Dev", last_name="Admin", user_type=UserType.ADMIN
            )
            user.set_password(password)
            user.save()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password)
            path.chmod(0o600)
        self.stdout.write(f"[pms] admin login: {email} / {password}  (stored in {path})")
