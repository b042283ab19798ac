"""Reports rendered from Markdown, sanitised: raw HTML in the text is escaped (never passed
through) and markdown-it refuses javascript:/vbscript:/file:/data: links."""

from __future__ import annotations

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)


def markdown_render(text: str) -> str:
    return _md.render(text or "")
