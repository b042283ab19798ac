import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from accounts.decorators import OrgRequiredMixin, org_required
from accounts.middleware import CurrentOrganizationMiddleware
from accounts.models import Role

pytestmark = pytest.mark.django_db


def _request(user):
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request = RequestFactory().get("/dashboard/thing/")
    request.user = user or AnonymousUser()
    request.session = SessionStore()
    CurrentOrganizationMiddleware(lambda r: None)._attach(request)
    return request


@org_required("admin")
def admin_view(request):
    return HttpResponse(f"{request.org.slug} {request.membership.role}")


@org_required
def any_member_view(request):
    return HttpResponse(request.org.slug)


def test_anonymous_users_are_sent_to_log_in_with_next():
    response = admin_view(_request(None))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=/dashboard/thing/")


def test_users_without_an_organization_are_sent_to_create_one(user):
    response = any_member_view(_request(user))
    assert response.status_code == 302
    assert response.url == "/dashboard/organizations/new/"


def test_a_role_below_the_minimum_is_refused(member_of):
    with pytest.raises(PermissionDenied):
        admin_view(_request(member_of(Role.MEMBER)))


def test_a_high_enough_role_passes_with_request_org_set(org, admin_user, owner):
    assert admin_view(_request(admin_user)).content.decode() == f"{org.slug} admin"
    assert admin_view(_request(owner)).content.decode() == f"{org.slug} owner"


def test_the_bare_decorator_means_any_member(org, viewer):
    assert any_member_view(_request(viewer)).content.decode() == org.slug


def test_a_misspelled_role_fails_at_import_time():
    with pytest.raises(ValueError):
        org_required("superadmin")


def test_the_mixin_applies_the_same_rules(viewer, owner):
    from django.views import View

    class Page(OrgRequiredMixin, View):
        min_role = "owner"

        def get(self, request):
            return HttpResponse("ok")

    with pytest.raises(PermissionDenied):
        Page.as_view()(_request(viewer))
    assert Page.as_view()(_request(owner)).status_code == 200


def test_async_views_are_wrapped_too(org, owner, viewer):
    from asgiref.sync import async_to_sync, iscoroutinefunction

    @org_required("owner")
    async def view(request):
        return HttpResponse("async ok")

    assert iscoroutinefunction(view)
    # async_to_sync sends the wrapper's thread-sensitive DB check back to this thread.
    assert async_to_sync(view)(_request(owner)).content == b"async ok"
    with pytest.raises(PermissionDenied):
        async_to_sync(view)(_request(viewer))


def test_dashboard_members_page_answers_403_to_a_too_low_role_over_http(client, viewer):
    client.force_login(viewer)
    response = client.post("/dashboard/members/invite/", {"email": "a@b.co", "role": "viewer"})
    assert response.status_code == 403
