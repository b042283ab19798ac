from django.urls import path

from config.views import placeholder

app_name = "researcher"

urlpatterns = [
    path("", placeholder, {"title": "Researcher"}, name="runs"),
]
