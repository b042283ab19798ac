from django.urls import path

from researcher import views

app_name = "researcher"

urlpatterns = [
    path("", views.runs, name="runs"),
    path("estimate", views.estimate, name="estimate"),
    path("<uuid:run_id>/", views.run_detail, name="run"),
    path("<uuid:run_id>/status.json", views.run_status, name="run_status"),
    path("<uuid:run_id>/report.md", views.run_markdown, name="run_markdown"),
    path("<uuid:run_id>/cancel", views.run_cancel_view, name="run_cancel"),
]
