"""Deliverable kinds and the modules that group them (each a declared list of deliverables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core import json_schema as js

# A hashtag is a word (the "#" is added on export): no empty, symbol-only or spaced tags.
HASHTAG = "^[A-Za-z][A-Za-z0-9_]{1,29}$"


@dataclass(frozen=True, kw_only=True, slots=True)
class Kind:
    """A deliverable kind: what to write and where it goes."""

    id: str
    title: str
    platform: str
    guidance: str
    # Bounds the content for structured output; the reply must fit max_tokens (STUDIO_MAX_TOKENS) even at ~1.5
    # characters a token, or a small model cut off mid-string leaves invalid JSON.
    max_chars: int = 1200
    # A floor as well: SmolLM2 otherwise closes an email after two words ("Folding e-bike,", measured).
    min_chars: int = 80


KINDS: dict[str, Kind] = {k.id: k for k in (
    Kind(id="campaign_brief", title="Campaign brief", platform="internal",
         guidance="objective, audience insight, key message, proof points, channels, success metrics"),
    Kind(id="strategy_summary", title="Strategy summary", platform="internal",
         guidance="positioning, target segments, phases and the one metric that matters"),
    Kind(id="linkedin_post", title="LinkedIn post", platform="linkedin",
         guidance="a professional post of 80-150 words with a hook line and a call to action", max_chars=1000),
    Kind(id="x_post", title="X/Twitter post", platform="x", guidance="one post under 270 characters",
         min_chars=40, max_chars=280),
    Kind(id="instagram_caption", title="Instagram caption", platform="instagram",
         guidance="a warm caption of 40-80 words, emoji allowed", max_chars=600),
    Kind(id="email_copy", title="Email copy", platform="email",
         guidance="subject line, preview text and a short body with one call to action"),
    Kind(id="blog_outline", title="Blog outline", platform="blog",
         guidance="a title and an outline of 5-7 sections with one line each"),
    Kind(id="video_script", title="Video script", platform="video",
         guidance="a 30-second script with scene directions and voice-over lines"),
    Kind(id="image_prompt", title="Image prompt", platform="image",
         guidance="a detailed prompt for an image generator: subject, style, light, composition", max_chars=800),
    Kind(id="ad_copy", title="Ad copy", platform="ads", guidance="three headline and description variants"),
    Kind(id="content_calendar", title="Content calendar", platform="calendar",
         guidance="a two-week table: date, platform, post idea"),
)}

MODULES: dict[str, tuple[str, ...]] = {
    "campaign": ("campaign_brief", "linkedin_post", "x_post", "email_copy"),
    "social_calendar": ("content_calendar", "instagram_caption", "x_post"),
    "launch": ("strategy_summary", "blog_outline", "video_script", "ad_copy", "image_prompt"),
}


def deliverable_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of one deliverable, bounded so a constrained reply always closes."""
    return js.obj({"title": js.text(100), "content_markdown": js.text(kind.max_chars, min_length=kind.min_chars),
                   "hashtags": js.array(js.text(30, min_length=2, pattern=HASHTAG), max_items=5)})
