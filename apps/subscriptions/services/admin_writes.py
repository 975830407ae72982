"""The admin site's writes of plans, subscriptions, features and usage rows (the site has checked
that the caller is an admin): each saves or deletes the row as the admin's form built it and
drops what it changes from the caches after the commit (`apps/subscriptions/caches.py`)."""

from django.db import transaction

from apps.subscriptions import caches
from apps.subscriptions.models import Feature, Subscription, SubscriptionPlan, UsageRecord


def plan_admin_save(*, plan: SubscriptionPlan) -> SubscriptionPlan:
    """Save the plan; its subscribers' status and every feature access are dropped (the plan page
    also edits the plan's feature rows in bulk, in this request's transaction)."""
    with transaction.atomic():
        created = plan._state.adding
        plan.save()
        if not created:
            caches.plan_saved(plan=plan)
    return plan


def plan_admin_delete(*, plan: SubscriptionPlan) -> None:
    """Delete the plan (refused by PostgreSQL while subscriptions use it); its feature rows go with it."""
    with transaction.atomic():
        caches.plan_saved(plan=plan)
        plan.delete()


def subscription_admin_save(*, subscription: Subscription) -> Subscription:
    """Save the subscription; the status and feature access of its user (and of a user it moved from)."""
    with transaction.atomic():
        previous_user_id = None
        if not subscription._state.adding:
            previous_user_id = Subscription.objects.filter(pk=subscription.pk).values_list("user_id", flat=True).first()
        subscription.save()
        caches.subscription_changed(sender=Subscription, instance=subscription, previous_user_id=previous_user_id)
    return subscription


def subscription_admin_delete(*, subscription: Subscription) -> None:
    with transaction.atomic():
        caches.subscription_changed(sender=Subscription, instance=subscription)
        subscription.delete()


def feature_admin_save(*, feature: Feature) -> Feature:
    """Save the feature (its name is not cached: nothing to drop)."""
    with transaction.atomic():
        feature.save()
    return feature


def feature_admin_delete(*, feature: Feature) -> None:
    """Delete the feature with its plan rows and usage; every user's access to it is dropped."""
    with transaction.atomic():
        caches.plan_feature_changed(feature_id=feature.pk)
        feature.delete()


def usage_admin_save(*, row: UsageRecord) -> UsageRecord:
    """Save a usage row; the access of its user to its feature (and of the pair it had before)."""
    with transaction.atomic():
        previous = None
        if not row._state.adding:
            previous = UsageRecord.objects.filter(pk=row.pk).values_list("user_id", "feature_id").first()
        row.save()
        caches.usage_changed(user_id=row.user_id, feature_id=row.feature_id, previous=previous)
    return row


def usage_admin_delete(*, row: UsageRecord) -> None:
    with transaction.atomic():
        caches.usage_changed(user_id=row.user_id, feature_id=row.feature_id)
        row.delete()
