"""Deliverable kinds and the modules that group them (each a declared list of deliverables)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Kind:
    """A deliverable kind: what to write and where it goes."""

    id: str
    title: str
    platform: str
    guidance: str


KINDS: dict[str, Kind] = {k.id: k for k in (
    Kind(id="campaign_brief", title="Campaign brief", platform="internal",
         guidance="objective, audience insight, key message, proof points, channels, success metrics"),
    Kind(id="strategy_summary", title="Strategy summary", platform="internal",
         guidance="positioning, target segments, phases and the one metric that matters"),
    Kind(id="linkedin_post", title="LinkedIn post", platform="linkedin",
         guidance="a professional post of 80-150 words with a hook line and a call to action"),
    Kind(id="x_post", title="X/Twitter post", platform="x", guidance="one post under 270 characters"),
    Kind(id="instagram_caption", title="Instagram caption", platform="instagram",
         guidance="a warm caption of 40-80 words, emoji allowed"),
    Kind(id="email_copy", title="Email copy", platform="email",
         guidance="subject line, preview text and a short body with one call to action"),
    Kind(id="blog_outline", title="Blog outline", platform="blog",
         guidance="a title and an outline of 5-7 sections with one line each"),
    Kind(id="video_script", title="Video script", platform="video",
         guidance="a 30-second script with scene directions and voice-over lines"),
    Kind(id="image_prompt", title="Image prompt", platform="image",
         guidance="a detailed prompt for an image generator: subject, style, light, composition"),
    Kind(id="ad_copy", title="Ad copy", platform="ads", guidance="three headline and description variants"),
    Kind(id="content_calendar", title="Content calendar", platform="calendar",
         guidance="a two-week table: date, platform, post idea"),
)}

MODULES: dict[str, tuple[str, ...]] = {
    "campaign": ("campaign_brief", "linkedin_post", "x_post", "email_copy"),
    "social_calendar": ("content_calendar", "instagram_caption", "x_post"),
    "launch": ("strategy_summary", "blog_outline", "video_script", "ad_copy", "image_prompt"),
}
