"""Settings of the real Celery worker the researcher tests start: the test settings, with the
Redis broker instead of eager execution and a short lease so a takeover is quick to test."""

import os

from config.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_URL = os.environ["REDIS_URL"]
RESEARCHER_LEASE_SECONDS = int(os.environ.get("RESEARCHER_LEASE_SECONDS", "2"))
# The tests' own queue on their Redis database (the test process sends there too).
CELERY_TASK_DEFAULT_QUEUE = "researcher-tests"
