import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_asgi_application()

from routing.asgi import with_gateway  # noqa: E402

# /v1/ (the proxy) skips the site's middleware stack: see routing/asgi.py.
application = with_gateway(application)

from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # The embedded demo (`make run`) serves its own static files under uvicorn.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
