"""Create the load tests' users, conversations and session tokens; print them as JSON.

    python manage.py seed_loadtest_users --users 5000 --watchers 1000 --pairs 200 --out tokens.json

`loadtests/` imports nothing from the code base, so this command is its only way in:
the benchmark and the locustfile run it as a subprocess and read the JSON it writes.

What it creates (emails `<prefix>-<kind>-<n>@loadtest.invalid`, all with `--password`):
- `--users` tenants: the idle sockets (each subscribes to its own `notifications:{userId}`);
- `--watchers` admins: fan-out and recovery subscribers (admins may subscribe to any
  chat topic without being participants, so a reconnect storm of watchers does not
  also fan presence changes out to the conversation);
- `--pairs` conversations of one tenant and one property manager (chat rooms);
- one "broadcast" conversation with `--publishers` participants (recovery scenario).

Every user gets one session, created like `POST /api/v1/auth/login` creates one
(SHA-256 of the secret in `sessions`, the session cached at `user:session:{id}`), and
its bearer token is printed. Logging in over HTTP would be the same, except that
PBKDF2 makes 15,000 logins take hours on two cores: that is why the tokens are minted
here. All users share one password hash (one salt): load-test accounts only.
"""

import asyncio
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Session, User, UserType
from apps.accounts.services import Principal, hash_secret
from apps.messaging.models import Conversation, ConversationParticipant
from realtime.connections import aclose_loop_clients

DOMAIN = "loadtest.invalid"


def _emails(prefix: str, kind: str, count: int) -> list[str]:
    return [f"{prefix}-{kind}-{n}@{DOMAIN}" for n in range(count)]


class Command(BaseCommand):
    help = "Create load-test users, conversations and session tokens; write them as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=1000, help="idle tenants (one socket each)")
        parser.add_argument("--watchers", type=int, default=1000, help="admin subscribers for fan-out/recovery")
        parser.add_argument("--pairs", type=int, default=200, help="tenant + manager conversations")
        parser.add_argument("--publishers", type=int, default=4, help="participants of the broadcast conversation")
        parser.add_argument("--password", default="loadtest-password-1")
        parser.add_argument("--prefix", default="lt")
        parser.add_argument("--out", help="write the JSON here (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix, password = options["prefix"], options["password"]
        password_hash = make_password(password)
        kinds: list[tuple[str, int, str]] = [
            ("user", options["users"], UserType.TENANT),
            ("watch", options["watchers"], UserType.ADMIN),
            ("tenant", options["pairs"], UserType.TENANT),
            ("manager", options["pairs"], UserType.PROPERTY_MANAGER),
            ("pub", options["publishers"], UserType.TENANT),
        ]
        users: dict[str, list[User]] = {}
        with transaction.atomic():
            for kind, count, user_type in kinds:
                emails = _emails(prefix, kind, count)
                User.objects.bulk_create(
                    [
                        User(
                            email=e,
                            password=password_hash,
                            first_name=kind.title(),
                            last_name=e.split("@")[0],
                            user_type=user_type,
                        )
                        for e in emails
                    ],
                    ignore_conflicts=True,
                    batch_size=2000,
                )
                by_email = {u.email: u for u in User.objects.filter(email__in=emails)}
                users[kind] = [by_email[e] for e in emails]
            conversations = self._conversations(prefix, users)
            tokens, principals = self._sessions([u for group in users.values() for u in group])
        asyncio.run(self._cache(principals))

        def person(user: User) -> dict[str, str]:
            return {"id": str(user.pk), "email": user.email, "token": tokens[user.pk]}

        result = {
            "password": password,
            "users": [person(u) for u in users["user"]],
            "watchers": [person(u) for u in users["watch"]],
            "pairs": [
                {"conversationId": str(conversations[f"pair-{n}"].pk), "a": person(t), "b": person(m)}
                for n, (t, m) in enumerate(zip(users["tenant"], users["manager"], strict=True))
            ],
            "broadcast": {
                "conversationId": str(conversations["broadcast"].pk),
                "publishers": [person(u) for u in users["pub"]],
            },
        }
        text = json.dumps(result)
        if options["out"]:
            Path(options["out"]).write_text(text)
            self.stderr.write(
                f"[pms] load-test data: {sum(len(v) for v in users.values())} users, "
                f"{len(conversations)} conversations -> {options['out']}"
            )
        else:
            self.stdout.write(text)

    def _conversations(self, prefix: str, users: dict[str, list[User]]) -> dict[str, Conversation]:
        wanted = {f"pair-{n}": [t, m] for n, (t, m) in enumerate(zip(users["tenant"], users["manager"], strict=True))}
        wanted["broadcast"] = list(users["pub"])
        subjects = {name: f"{prefix}:{name}" for name in wanted}
        existing = {c.subject: c for c in Conversation.objects.filter(subject__in=subjects.values())}
        missing = [Conversation(subject=s) for s in subjects.values() if s not in existing]
        Conversation.objects.bulk_create(missing, batch_size=2000)
        existing.update({c.subject: c for c in missing})
        result = {name: existing[subject] for name, subject in subjects.items()}
        ConversationParticipant.objects.bulk_create(
            [
                ConversationParticipant(conversation=result[name], user=u)
                for name, members in wanted.items()
                for u in members
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        return result

    def _sessions(self, people: list[User]) -> tuple[dict[Any, str], list[tuple[Principal, str]]]:
        now = timezone.now()
        expires = now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS)
        secrets_by_user = {u.pk: secrets.token_urlsafe(32) for u in people}
        sessions = [
            Session(user=u, token=hash_secret(secrets_by_user[u.pk]), expires_at=expires, user_agent="loadtest seed")
            for u in people
        ]
        Session.objects.bulk_create(sessions, batch_size=2000)
        tokens = {s.user.pk: f"{s.pk}.{secrets_by_user[s.user.pk]}" for s in sessions}  # type: ignore[union-attr]
        principals = [
            (
                Principal(
                    user_id=str(u.pk),
                    session_id=str(s.pk),
                    email=u.email,
                    first_name=u.first_name,
                    last_name=u.last_name,
                    user_type=u.user_type,
                    roles=(),
                    expires_at=expires,
                ),
                s.token,
            )
            for u, s in zip(people, sessions, strict=True)
        ]
        return tokens, principals

    async def _cache(self, principals: list[tuple[Principal, str]]) -> None:
        # What a login does after creating the session (apps.accounts.services), so the
        # first socket of each token authenticates from Redis, as it would after a login.
        from apps.accounts.services import _cache_session

        try:
            for start in range(0, len(principals), 500):
                await asyncio.gather(*(_cache_session(p, h) for p, h in principals[start : start + 500]))
        finally:
            await aclose_loop_clients()
