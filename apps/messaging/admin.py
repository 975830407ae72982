"""Admin for conversations (extension tables), with their participants inline, and sending system broadcasts."""

from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from apps.common.service_admin import ServiceWriteAdmin
from apps.messaging import services
from apps.messaging.models import Conversation, ConversationParticipant
from apps.messaging.services import (
    DEFAULT_PRIORITY,
    MESSAGE_MAX_LENGTH,
    PRIORITIES,
    TITLE_MAX_LENGTH,
    abroadcast_send,
)
from realtime.errors import ProtocolError

BROADCAST_SENT = "Broadcast “{title}” sent on system:broadcasts (offset {offset})."


class BroadcastForm(forms.Form):
    """What an admin fills in to send a `broadcast` on `system:broadcasts`."""

    title = forms.CharField(max_length=TITLE_MAX_LENGTH)
    message = forms.CharField(max_length=MESSAGE_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 6, "cols": 80}))
    priority = forms.ChoiceField(choices=[(p, p.title()) for p in PRIORITIES], initial=DEFAULT_PRIORITY)


class ConversationParticipantInline(admin.TabularInline):
    model = ConversationParticipant
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "joined_at", "last_read_message_id", "last_read_at"]


@admin.register(Conversation)
class ConversationAdmin(ServiceWriteAdmin):
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

    def service_save(self, request: HttpRequest, obj: Conversation) -> None:
        services.conversation_admin_save(conversation=obj)

    def service_delete(self, request: HttpRequest, obj: Conversation) -> None:
        services.conversation_admin_delete(conversation=obj)

    def inline_save(self, request: HttpRequest, obj: Any) -> None:
        """Participants through the service, so whoever is added or removed is re-checked on commit."""
        services.conversation_participant_admin_save(participant=obj)

    def inline_delete(self, request: HttpRequest, obj: Any) -> None:
        services.conversation_participant_admin_delete(participant=obj)

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        broadcast = path(
            "broadcast/",
            self.admin_site.admin_view(self.broadcast_view),
            name=f"{opts.app_label}_{opts.model_name}_broadcast",
        )
        return [broadcast, *super().get_urls()]

    def broadcast_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the broadcast form; POST: send it through the same service as the HTTP API, then back to the list."""
        if not getattr(request.user, "is_admin", False):
            raise PermissionDenied
        form = BroadcastForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                frame = async_to_sync(abroadcast_send)(sender_id=str(request.user.pk), **form.cleaned_data)
            except ProtocolError as exc:
                form.add_error(None, exc.message)
            else:
                text = BROADCAST_SENT.format(title=frame["data"]["title"], offset=frame["offset"])
                self.message_user(request, text, messages.SUCCESS)
                opts = self.model._meta
                return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Send a system broadcast",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/messaging/conversation/broadcast.html", context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(num_participants=Count("participants"))

    @admin.display(description="participants", ordering="num_participants")
    def participant_count(self, obj: Conversation) -> int:
        return obj.num_participants  # type: ignore[attr-defined]
