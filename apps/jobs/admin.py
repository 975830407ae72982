"""The days each daily job has done, read-only: what ran when and how much it did."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.jobs.models import DailyJobRun


@admin.register(DailyJobRun)
class DailyJobRunAdmin(admin.ModelAdmin):
    list_display = ["job", "day", "count", "finished_at"]
    list_filter = ["job"]
    search_fields = ["job"]
    date_hierarchy = "day"
    ordering = ["-day", "job"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
