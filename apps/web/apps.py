from django.apps import AppConfig


class WebConfig(AppConfig):
    """The web app: page shells and the browser's protocol client (DESIGN.md "The web app")."""

    name = "apps.web"
    label = "web"
