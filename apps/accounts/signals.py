"""Drop a user's cached permissions and sessions after a committed change of roles or type."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.accounts.models import User, UserRole
from apps.accounts.services import user_caches_drop

# Saves that touch only these fields change nothing the caches hold.
_IRRELEVANT_FIELDS = frozenset({"last_login", "updated_at"})


def _drop_after_commit(user_id: Any) -> None:
    if user_id is not None:
        transaction.on_commit(lambda: user_caches_drop(user_id=str(user_id)))


@receiver(post_save, sender=UserRole)
@receiver(post_delete, sender=UserRole)
def role_changed(sender: type, instance: UserRole, **kwargs: Any) -> None:
    _drop_after_commit(instance.user_id)


@receiver(post_save, sender=User)
def user_changed(sender: type, instance: User, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if created:
        return
    if update_fields is not None and set(update_fields) <= _IRRELEVANT_FIELDS:
        return
    _drop_after_commit(instance.pk)
