"""A rendered export as an HTTP download: its media type and a `Content-Disposition` no title can break."""

from __future__ import annotations

from fastapi import Response

from services.export.formats import Export


def download(export: Export) -> Response:
    """The file as a response that browsers save under its name."""
    return Response(export.content, media_type=export.media_type,
                    headers={"Content-Disposition": export.disposition})
