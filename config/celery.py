"""Celery application: Redis broker in production, kombu's filesystem transport in the demo."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("tokenforge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
