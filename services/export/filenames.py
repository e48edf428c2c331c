"""The one `Content-Disposition` for every download: a name no title can turn into a header or a path."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

STEM_CHARS = 100  # before the extension; a CJK name percent-encodes to ~9 bytes a character
DEFAULT_STEM = "download"
EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
# Path separators, what Windows refuses in a name, and the header's own delimiters.
UNSAFE = re.compile(r'[\\/:*?"<>|;]')
NOT_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename` and, when that had to lose something, an RFC 5987 `filename*`."""
    fallback = ascii_name(name)
    full = safe_name(name)
    header = f'attachment; filename="{fallback}"'
    # RFC 6266 appendix D: add filename* only where the plain form cannot say the name faithfully.
    return header if full == fallback else f"{header}; filename*=UTF-8''{quote(full, safe='')}"


def safe_name(name: str) -> str:
    """The name as a file system would take it: no separators, controls, bidi overrides or leading dots."""
    stem, ext = _split(unicodedata.normalize("NFC", name))
    stem = re.sub(r"\s+", " ", UNSAFE.sub("-", "".join(_visible(c) for c in stem)))
    stem = re.sub(r"-{2,}", "-", stem).strip(" .-")[:STEM_CHARS].rstrip(" .-")
    return _join(stem, ext)


def ascii_name(name: str) -> str:
    """The plain-ASCII fallback: letters, digits, dot, dash and underscore only, so it never needs quoting."""
    stem, ext = _split(name)
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    ascii_stem = NOT_ASCII_SAFE.sub("-", ascii_stem)
    ascii_stem = re.sub(r"-{2,}", "-", ascii_stem).strip(".-")[:STEM_CHARS].rstrip(".-")
    return _join(ascii_stem, ext)


def _visible(char: str) -> str:
    """Whitespace as a space, other control-like characters as nothing."""
    # Category C: controls, format characters (U+202E can make `gpj.exe` read `exe.jpg`), surrogates, unassigned.
    if char.isspace():
        return " "
    return "" if unicodedata.category(char).startswith("C") else char


def _split(name: str) -> tuple[str, str]:
    """Stem and extension, the extension only when it looks like one (`.md`, `.json`, `.pdf`)."""
    stem, dot, ext = name.rpartition(".")
    return (stem, ext.lower()) if dot and stem and EXTENSION.fullmatch(ext) else (name, "")


def _join(stem: str, ext: str) -> str:
    """Stem and extension back together, with a stem even when nothing of the name survived."""
    return f"{stem or DEFAULT_STEM}.{ext}" if ext else stem or DEFAULT_STEM
