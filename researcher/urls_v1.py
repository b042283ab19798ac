"""/v1/research/: the AI Researcher API for apps (mounted before routing's /v1/ catch-all)."""

from django.urls import path

from researcher import views_v1

app_name = "researcher-v1"

urlpatterns = [
    path("runs", views_v1.RunsView.as_view(), name="runs"),
    path("runs/<str:run_id>", views_v1.RunView.as_view(), name="run"),
    path("runs/<str:run_id>/cancel", views_v1.RunCancelView.as_view(), name="run-cancel"),
]
