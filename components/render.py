"""Markdown to safe HTML: raw HTML in model output is escaped, code blocks highlighted.

The browser renders streamed blocks itself with markdown-it 14.1.0, the JavaScript original of the
markdown-it-py port used here (same options, same output). Syntax highlighting stays with Pygments:
`fence_hints` lexes each fenced code block here and sends only its token classes and lengths, which
the browser turns into exactly the HTML `render_markdown` would have produced.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound

# A fence's hint: None = no lexer (plain escaped text), str = Pygments runs "<len><class> …" over the
# lexer's normalised text (lengths in UTF-16 units, left out when 1; spaces in classes as "."), [html] = the
# body itself.
FenceHint = str | list[str] | None


def render_markdown(text: str) -> str:
    """HTML for a markdown block; never passes raw HTML or javascript: links through."""
    return _parser().render(text)


def fence_hints(block: str) -> list[FenceHint]:
    """Highlighting for each fenced code block of `block`, in document order (see module docstring)."""
    if "```" not in block and "~~~" not in block:
        return []
    return [_hint(token.content, _fence_lang(token.info))
            for token in _parser().parse(block) if token.type == "fence"]


def highlight_css() -> str:
    """Pygments styles for light and dark mode."""
    light = HtmlFormatter(style="friendly").get_style_defs(".lantern-md .hl")
    dark = HtmlFormatter(style="monokai").get_style_defs("body.body--dark .lantern-md .hl")
    return light + "\n" + dark


def utf16_len(text: str) -> int:
    """Length as JavaScript counts it."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    """One parser: CommonMark + tables + strikethrough, HTML disabled."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """A highlighted code block with a copy button slot; unknown languages stay plain."""
    lexer = _lexer(lang)
    body = highlight(code, lexer, _formatter()) if lexer is not None else escape(code)
    label = escape(lang) if lang else "text"
    return (f'<pre class="hl" data-lang="{label}"><button class="lantern-copy" type="button" '
            f'title="Copy code">copy</button><code>{body}</code></pre>')


def _hint(code: str, lang: str) -> FenceHint:
    """Token runs for one fence, or the highlighted body when the browser could not rebuild it."""
    lexer = _lexer(lang)
    if lexer is None:
        return None
    tokens = list(lexer.get_tokens(code))
    if "".join(value for _, value in tokens) != _normalised(code):
        return [highlight(code, lexer, _formatter())]  # a lexer that rewrites text: send its HTML
    runs: list[str] = []
    last_cls, length = "", 0
    for ttype, value in tokens:
        cls = _css_class(ttype)
        if cls != last_cls and length:
            runs.append(_run(length, last_cls))
            length = 0
        last_cls = cls
        length += utf16_len(value)
    if length:
        runs.append(_run(length, last_cls))
    return " ".join(runs)


def _run(length: int, cls: str) -> str:
    """One run, "<length><class>"; a length of 1 is left out (most runs: a space, a bracket), since class
    names start with a letter."""
    return cls if length == 1 and not cls[:1].isdigit() else f"{length}{cls}"


def _normalised(code: str) -> str:
    """The text a default Pygments lexer tokenises (the browser applies the same rule)."""
    return code.strip("\n") + "\n"


def _fence_lang(info: str) -> str:
    """The language name of a fence's info string, as markdown-it's fence renderer reads it."""
    info = unescapeAll(info).strip() if info else ""
    return info.split(maxsplit=1)[0] if info else ""


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    """A lexer for a fence's language, or None for plain text."""
    try:
        return get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        return None


@lru_cache(maxsize=1)
def _formatter() -> HtmlFormatter[str]:
    """Pygments' HTML body only (the <pre> wrapper is ours)."""
    return HtmlFormatter(nowrap=True)


@lru_cache(maxsize=1024)
def _css_class(ttype: _TokenType) -> str:
    """The CSS classes Pygments' HTML formatter gives a token type, spaces written as dots."""
    return str(_formatter()._get_css_classes(ttype)).replace(" ", ".")
