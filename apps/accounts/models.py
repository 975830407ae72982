"""Users, their roles and their API sessions: the seed's `users`, `user_roles`, `sessions`."""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import acheck_password, check_password
from django.db import connection, models, transaction
from django.db.models.functions import Now
from django.utils import timezone

from apps.common.fields import (
    created_at_field,
    enum_check,
    enum_field,
    flag_field,
    updated_at_field,
    uuid_primary_key,
)


class UserType(models.TextChoices):
    TENANT = "tenant", "Tenant"
    LANDLORD = "landlord", "Landlord"
    PROPERTY_MANAGER = "property_manager", "Property manager"
    ADMIN = "admin", "Admin"


class UserManager(BaseUserManager["User"]):
    """Creates users with email as the login and a hashed password."""

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        if not email:
            raise ValueError("users need an email")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields["user_type"] = UserType.ADMIN
        fields.setdefault("first_name", "Admin")
        fields.setdefault("last_name", "User")
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser):
    """A person who signs in: tenant, landlord, property manager or admin.

    `password` is stored in the seed's `password_hash` column by Django's hashers.
    Admin access follows `user_type == "admin"`; there is no separate staff flag.
    """

    id = uuid_primary_key("user_id")
    email = models.EmailField(max_length=255, unique=True)
    password = models.CharField(max_length=255, db_column="password_hash")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    phone = models.CharField(max_length=20, null=True, blank=True)
    user_type = enum_field(UserType)
    created_at = created_at_field()
    updated_at = updated_at_field()
    # last_login comes from AbstractBaseUser: TIMESTAMPTZ NULL, as in the seed.
    is_active = flag_field(True)
    profile_image_url = models.CharField(max_length=255, null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    class Meta:
        db_table = "users"
        indexes = [
            models.Index(fields=["email"], name="idx_users_email"),
            models.Index(fields=["user_type"], name="idx_users_user_type"),
        ]
        constraints = [enum_check("users", "user_type", UserType)]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.email}>"

    @property
    def is_admin(self) -> bool:
        return self.user_type == UserType.ADMIN

    @property
    def is_staff(self) -> bool:
        """Django admin's gate: active admins only."""
        return bool(self.is_active) and self.is_admin

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_staff

    def has_perms(self, perm_list: Any, obj: object = None) -> bool:
        return self.is_staff

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff

    def check_password(self, raw_password: str) -> bool:
        """Django's check, but a hash upgrade it saves (stronger hasher settings) is marked as
        such, so the credentials trigger (migration 0002) does not end the user's sessions."""

        def setter(raw: str) -> None:
            self.set_password(raw)
            self._password = None
            _save_rehashed(self)

        return check_password(raw_password, self.password, setter)

    async def acheck_password(self, raw_password: str) -> bool:
        """See `check_password`."""

        async def setter(raw: str) -> None:
            self.set_password(raw)
            self._password = None
            await sync_to_async(_save_rehashed)(self)

        return await acheck_password(raw_password, self.password, setter)

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name


_REHASH = "SELECT set_config('pms.password_rehash', %s, true)"


def _save_rehashed(user: User) -> None:
    """Save a re-hashed password (same password, new hash) without it counting as a change."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_REHASH, ["on"])
        user.save(update_fields=["password"])
        with connection.cursor() as cursor:
            cursor.execute(_REHASH, [""])


class UserRole(models.Model):
    """A named role held by a user (`maintenance_staff`, `accountant`, ...)."""

    id = models.AutoField(primary_key=True, db_column="role_id")
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, related_name="roles", db_column="user_id")
    role_name = models.CharField(max_length=50)

    class Meta:
        db_table = "user_roles"
        constraints = [models.UniqueConstraint(fields=["user", "role_name"], name="user_roles_user_id_role_name_key")]

    def __str__(self) -> str:
        return self.role_name


class Session(models.Model):
    """An API / socket session. `token` holds the SHA-256 of the secret, never the token."""

    id = uuid_primary_key("session_id")
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, related_name="sessions", db_column="user_id")
    token = models.CharField(max_length=255)
    expires_at = models.DateTimeField()
    created_at = created_at_field()
    ip_address = models.CharField(max_length=45, null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "sessions"

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"


class SessionRevocation(models.Model):
    """EXTENSION (not in the seed): a session row that was deleted and whose cache and sockets
    still have to be told.

    Written by PostgreSQL itself (migration 0002's triggers), so every way a session ends
    is seen, whatever did it: logout, an admin's revoke, a password change or a
    deactivation through the services, the Django admin, `QuerySet.update()` or raw SQL
    (`UPDATE users SET is_active = false`). `services.session_revocations_relay` claims the
    rows, drops `user:session:{id}` and publishes `session.revoked` on the control channel
    (every process closes the session's sockets with 4409), then forgets them; it runs
    right after a commit of the service or admin path and in every housekeeping round.
    """

    id = models.BigAutoField(primary_key=True)
    session_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)

    class Meta:
        db_table = "session_revocations"

    def __str__(self) -> str:
        return f"session {self.session_id} revoked (#{self.id})"
