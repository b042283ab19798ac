from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import TemplateView

from config.views import placeholder

app_name = "accounts"

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", placeholder, {"title": "Sign up"}, name="signup"),
    path("dashboard/members/", placeholder, {"title": "Members"}, name="members"),
]
