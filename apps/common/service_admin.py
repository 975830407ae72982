"""A ModelAdmin whose writes go through the domain's services, so admin edits record their events.

Django's admin saves and deletes with the ORM directly; the services are the one write path
(they record change events in the outbox in the same transaction). A subclass names its
services in `service_save` / `service_delete`, and `inline_save` / `inline_delete` route rows
of inline formsets (units of a property, work orders of a request) to theirs. The admin site
has checked that the user may use it; the admin's view wraps each request in a transaction.
"""

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest


class ServiceWriteAdmin(admin.ModelAdmin):
    """Saves, deletes (one or a selection) and inline rows go through services."""

    def service_save(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def inline_save(self, request: HttpRequest, obj: Model) -> None:
        """Save a row of an inline formset (no event of its own unless a subclass routes it)."""
        obj.save()

    def inline_delete(self, request: HttpRequest, obj: Model) -> None:
        obj.delete()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.service_save(request, obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.service_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.service_delete(request, obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            self.inline_delete(request, obj)
        for instance in instances:
            self.inline_save(request, instance)
        formset.save_m2m()
