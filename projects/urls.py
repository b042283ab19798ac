from django.urls import path

from projects import views

app_name = "projects"

urlpatterns = [
    path("projects/", views.project_list, name="list"),
    path("projects/<int:pk>/edit/", views.project_edit, name="edit"),
    path("projects/<int:pk>/archive/", views.project_archive, name="archive"),
    path("keys/", views.key_list, name="keys"),
    path("keys/new/", views.key_create, name="key_create"),
    path("keys/<int:pk>/created/", views.key_created, name="key_created"),
    path("keys/<int:pk>/edit/", views.key_edit, name="key_edit"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
]
