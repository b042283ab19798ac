from rest_framework.routers import SimpleRouter

from researcher import api

router = SimpleRouter()
router.register("research/runs", api.ResearchRunViewSet, basename="api-research-runs")

urlpatterns = router.urls
