"""Admin for conversations (extension tables), with their participants inline."""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apps.messaging.models import Conversation, ConversationParticipant


class ConversationParticipantInline(admin.TabularInline):
    model = ConversationParticipant
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "joined_at", "last_read_message_id", "last_read_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "property", "created_by", "participant_count", "created_at", "updated_at"]
    list_filter = ["property", "created_at"]
    search_fields = [
        "subject",
        "property__property_name",
        "created_by__email",
        "participants__user__email",
    ]
    list_select_related = ["property", "created_by"]
    raw_id_fields = ["property", "created_by"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [ConversationParticipantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(num_participants=Count("participants"))

    @admin.display(description="participants", ordering="num_participants")
    def participant_count(self, obj: Conversation) -> int:
        return obj.num_participants  # type: ignore[attr-defined]
