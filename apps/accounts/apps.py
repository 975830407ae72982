from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Users and authentication"

    def ready(self) -> None:
        from apps.accounts import signals  # noqa: F401  (connects the receivers)
