from django.urls import path

from ledger.views import topup

urlpatterns = [
    path("topup/", topup.topup_page, name="topup"),
    path("topup/checkout/", topup.topup_checkout, name="topup_checkout"),
    path("topup/redeem/", topup.topup_redeem, name="topup_redeem"),
    path("topup/test/<int:pk>/", topup.topup_test_pay, name="topup_test_pay"),
    path("topup/receipts/<int:pk>/", topup.topup_receipt, name="topup_receipt"),
    path("topup/alerts/", topup.topup_alert_save, name="topup_alert_save"),
    path("topup/auto/", topup.topup_auto_save, name="topup_auto_save"),
    path("webhooks/stripe/", topup.stripe_webhook, name="stripe_webhook"),
]
