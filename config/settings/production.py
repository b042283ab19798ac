"""Production: secrets only from the environment, secure cookies, HSTS, CSP.

`python manage.py check --deploy` is clean with these settings (tests/security/test_deploy.py).
"""

from .base import *  # noqa: F403
from .base import env

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients):
# "HTTP_X_FORWARDED_PROTO,https" (default). Set it empty when clients reach uvicorn directly.
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=["HTTP_X_FORWARDED_PROTO", "https"])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) if len(_proxy_header) == 2 else None
# Health checks, Prometheus and API clients are not redirected (they do not follow to https).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$", r"^v1/"]
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
