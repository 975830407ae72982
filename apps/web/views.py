"""Page shells. They hold no data: every page loads its data in the browser from the public
HTTP API (`/api/v1/...`) and `/ws/`, with the token kept in sessionStorage, so the web app is
the reference client a mobile app can copy. Nothing here reads the database."""

from django.views.generic import TemplateView


class SignInPage(TemplateView):
    template_name = "web/signin.html"


class TenantRequestsPage(TemplateView):
    """A tenant's "My maintenance requests": list, file one, statuses change live."""

    template_name = "web/requests.html"


class BoardPage(TemplateView):
    """The managers' and landlords' maintenance board: one column per status, live."""

    template_name = "web/board.html"


class AccountPage(TemplateView):
    """A tenant's lease(s) and charges (due, paid, late), live."""

    template_name = "web/account.html"


class ChatInboxPage(TemplateView):
    """Everyone's chat inbox: their conversations with unread counts and presence, live."""

    template_name = "web/inbox.html"


class ChatPage(TemplateView):
    """One conversation: live messages, history upward, typing, read receipts, presence."""

    template_name = "web/chat.html"
