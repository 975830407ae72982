from django.urls import path

from apps.web.views import AccountPage, BoardPage, ChatInboxPage, ChatPage, SignInPage, TenantRequestsPage

app_name = "web"

urlpatterns = [
    path("", SignInPage.as_view(), name="signin"),
    path("requests/", TenantRequestsPage.as_view(), name="requests"),
    path("board/", BoardPage.as_view(), name="board"),
    path("account/", AccountPage.as_view(), name="account"),
    path("chat/", ChatInboxPage.as_view(), name="chat-inbox"),
    path("chat/<uuid:conversation_id>/", ChatPage.as_view(), name="chat"),
]
