"""/v1/: the OpenAI-compatible surface (and Anthropic's /v1/messages from views_anthropic)."""

from __future__ import annotations

from django.urls import path, re_path

from routing import views

app_name = "routing"

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("embeddings", views.EmbeddingsView.as_view(), name="embeddings"),
    path("models", views.ModelsView.as_view(), name="models"),
    path("generation", views.GenerationView.as_view(), name="generation"),
    path("key", views.KeyView.as_view(), name="key"),
]

try:  # the Anthropic surface lives in its own module (providers issue)
    from routing import views_anthropic
except ImportError:  # pragma: no cover - until it exists
    views_anthropic = None
if views_anthropic is not None:
    if hasattr(views_anthropic, "urlpatterns"):
        urlpatterns += list(views_anthropic.urlpatterns)
    else:
        if hasattr(views_anthropic, "MessagesView"):
            urlpatterns.append(
                path("messages", views_anthropic.MessagesView.as_view(), name="messages")
            )
        if hasattr(views_anthropic, "CountTokensView"):
            urlpatterns.append(
                path(
                    "messages/count_tokens",
                    views_anthropic.CountTokensView.as_view(),
                    name="messages-count-tokens",
                )
            )

from routing import views_responses  # noqa: E402 - the Responses surface (issue 13)

urlpatterns += views_responses.urlpatterns

# Last: any other /v1/ path answers an OpenAI-shaped 404, never an HTML page.
urlpatterns.append(re_path(r"^(?P<path>.*)$", views.not_found, name="not-found"))
