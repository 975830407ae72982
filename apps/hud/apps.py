from django.apps import AppConfig


class HudConfig(AppConfig):
    name = "apps.hud"
    label = "hud"
    verbose_name = "HUD integration"
