"""URL map: pages per app, the management API under /api/, the proxy under /v1/."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import metrics as config_metrics
from config import views as config_views
from ledger.admin import overview_view as ledger_overview_view
from ledger.views import topup as ledger_topup_views
from routing import views_dashboard as routing_dashboard_views

admin.site.site_header = "tokenforge administration"
admin.site.site_title = "tokenforge administration"
admin.site.index_title = "Operations"


def api_not_found(request, rest: str = ""):
    """Any other path under /api/ answers the API's JSON 404, never the HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("", include("accounts.urls")),
    path("healthz", config_views.healthz, name="healthz"),
    path("metrics", config_metrics.metrics_view, name="metrics"),
    path("admin/overview/", admin.site.admin_view(ledger_overview_view), name="admin_overview"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("ledger.urls")),
    path("dashboard/", include("projects.urls")),
    path("dashboard/researcher/", include("researcher.urls")),
    path("dashboard/models/", routing_dashboard_views.models_page, name="models_page"),
    path("dashboard/", include("routing.urls_dashboard")),
    path("api/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file: no inline script under CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found, name="api-not-found"),
    path("", include("routing.urls_gateway")),  # /v1/: the proxy and the researcher's runs
    path("webhooks/stripe/", ledger_topup_views.stripe_webhook, name="stripe_webhook"),
]
