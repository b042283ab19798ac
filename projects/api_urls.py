from django.urls import path
from rest_framework.routers import SimpleRouter

from projects import api

router = SimpleRouter()
router.register("projects", api.ProjectViewSet, basename="api-projects")
router.register("keys", api.ApiKeyViewSet, basename="api-keys")

urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="api-token"),
    *router.urls,
]
