"""Format translation between the OpenAI chat surface and Anthropic Messages / Gemini.

Features with no equivalent in the target format raise `UnsupportedFeature` (answered 400),
never dropped silently; `docs/providers.md` lists what is translated and what is refused.
"""
