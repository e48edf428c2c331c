"""The one Content-Disposition builder: what a hostile or foreign name turns into."""

from __future__ import annotations

import pytest

from services.export.filenames import STEM_CHARS, content_disposition


@pytest.mark.parametrize(("name", "header"), [
    ("hi-there.md", 'attachment; filename="hi-there.md"'),  # plain names: no filename* at all
    ("pipeline-p\"; filename*=UTF-8''evil.html; x=\"-0a1b2c3d.json",
     "attachment; filename=\"pipeline-p-filename-UTF-8-evil.html-x-0a1b2c3d.json\"; "
     "filename*=UTF-8''pipeline-p-%20filename-%3DUTF-8%27%27evil.html-%20x%3D-0a1b2c3d.json"),
    ("Über «SQL».md", "attachment; filename=\"Uber-SQL.md\"; filename*=UTF-8''%C3%9Cber%20%C2%ABSQL%C2%BB.md"),
    ("日本語.pdf", "attachment; filename=\"download.pdf\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.pdf"),
    ("../../etc/passwd", 'attachment; filename="etc-passwd"'),
    ("a\r\nSet-Cookie: x=1.md",
     "attachment; filename=\"a-Set-Cookie-x-1.md\"; filename*=UTF-8''a%20Set-Cookie-%20x%3D1.md"),
    ("invoice\u202egpj.exe", "attachment; filename=\"invoicegpj.exe\""),  # the bidi override is dropped
    ("...", 'attachment; filename="download"'),
])
def test_names_become_safe_headers(name: str, header: str) -> None:
    assert content_disposition(name) == header


def test_long_names_keep_their_extension() -> None:
    header = content_disposition("x" * 500 + ".pdf")
    assert header == f'attachment; filename="{"x" * STEM_CHARS}.pdf"'
    assert header.isascii() and "\r" not in header and "\n" not in header
