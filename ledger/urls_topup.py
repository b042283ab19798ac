from django.urls import path

from config.views import placeholder

urlpatterns = [
    path("topup/", placeholder, {"title": "Top up"}, name="topup"),
]
