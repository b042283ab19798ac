"""One adapter module per provider behind the interface in `base`. `get_provider(kind)` picks one."""

from __future__ import annotations

from routing.providers.base import Provider

_REGISTRY: dict[str, str] = {
    "openai": "routing.providers.openai:OpenAIProvider",
    "openai-compatible": "routing.providers.openai:OpenAIProvider",
    "anthropic": "routing.providers.anthropic:AnthropicProvider",
    "gemini": "routing.providers.gemini:GeminiProvider",
    "demo": "routing.providers.demo:DemoProvider",
}
_INSTANCES: dict[str, Provider] = {}


def get_provider(kind: str) -> Provider:
    """The adapter for a provider kind (one shared, stateless instance per kind)."""
    if kind not in _INSTANCES:
        import importlib

        module_name, class_name = _REGISTRY[kind].split(":")
        _INSTANCES[kind] = getattr(importlib.import_module(module_name), class_name)()
    return _INSTANCES[kind]
