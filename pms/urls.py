from django.contrib import admin
from django.urls import include, path

from pms.api import api
from pms.health import healthz, readyz
from pms.metrics import prometheus_metrics

admin.site.site_header = "Property management administration"
admin.site.site_title = "PMS admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", prometheus_metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("apps.web.urls")),  # the web app (apps/web): sign-in at /, page shells
]
