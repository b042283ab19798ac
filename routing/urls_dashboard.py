"""Dashboard pages of the routing app."""

from django.urls import path

from routing import views_estimate

app_name = "routing_dashboard"

urlpatterns = [
    path("estimate/", views_estimate.estimate, name="estimate"),
]
