import pytest

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok_when_database_and_cache_are_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_home_page_links_to_sign_up_and_log_in(client):
    body = client.get("/").content.decode()
    assert "Sign up" in body and "Log in" in body


def test_organization_factory_opens_both_wallets(org):
    assert sorted(org.accounts.values_list("currency", flat=True)) == ["CREDIT", "RMB"]


def test_every_response_carries_a_request_id(client):
    assert client.get("/healthz").headers["x-request-id"].startswith("req_")
