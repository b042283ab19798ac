from django.urls import path

from config.views import placeholder

app_name = "projects"

urlpatterns = [
    path("projects/", placeholder, {"title": "Projects"}, name="list"),
    path("keys/", placeholder, {"title": "API keys"}, name="keys"),
]
