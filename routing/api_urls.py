from django.urls import path

from routing import api

urlpatterns = [
    path("estimate/", api.EstimateView.as_view(), name="api-estimate"),
]
