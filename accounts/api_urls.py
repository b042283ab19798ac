from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import api

router = SimpleRouter()
router.register("auth/tokens", api.ApiTokenViewSet, basename="api-tokens")

urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="api-token"),
    *router.urls,
]
