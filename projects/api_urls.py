from rest_framework.routers import SimpleRouter

from projects import api

router = SimpleRouter()
router.register("projects", api.ProjectViewSet, basename="api-projects")
router.register("keys", api.ApiKeyViewSet, basename="api-keys")

urlpatterns = [
    *router.urls,
]
