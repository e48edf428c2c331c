"""Markdown to safe HTML: raw HTML in model output is escaped, code blocks highlighted."""

from __future__ import annotations

from functools import lru_cache
from html import escape

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound


def render_markdown(text: str) -> str:
    """HTML for a markdown block; never passes raw HTML or javascript: links through."""
    return _parser().render(text)


def highlight_css() -> str:
    """Pygments styles for light and dark mode."""
    light = HtmlFormatter(style="friendly").get_style_defs(".lantern-md .hl")
    dark = HtmlFormatter(style="monokai").get_style_defs("body.body--dark .lantern-md .hl")
    return light + "\n" + dark


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    """One parser: CommonMark + tables + strikethrough, HTML disabled."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """A highlighted code block with a copy button slot; unknown languages stay plain."""
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    body = (highlight(code, lexer, HtmlFormatter(nowrap=True)) if lexer is not None
            else escape(code))
    label = escape(lang) if lang else "text"
    return (f'<pre class="hl" data-lang="{label}"><button class="lantern-copy" type="button" '
            f'title="Copy code">copy</button><code>{body}</code></pre>')
