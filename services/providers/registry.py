"""Providers looked up by `provider/model`; built once from the settings. Model lists come from the servers.

`list_models_live()` asks each available provider's server what it has (briefly, in parallel), caches each answer
for `list_ttl_s`, and falls back to the built-in names when a server does not answer; `list_models()` is the
same view without waiting, for callers that cannot await. An Ollama on its usual port is offered once it answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from services.core.errors import ProviderAuth, UnknownModel
from services.providers.anthropic_provider import AnthropicProvider
from services.providers.base import ModelInfo, Provider
from services.providers.bedrock import BedrockProvider
from services.providers.local import LocalProvider
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.scripted import ScriptedProvider

log = logging.getLogger(__name__)

LIST_TTL_S = 60.0  # how long a server's model list is trusted
LIST_TIMEOUT_S = 3.0  # how long a listing may take before the built-in names are shown instead
OLLAMA_URL = "http://127.0.0.1:11434/v1"  # where Ollama listens unless told otherwise


class Registry:
    """All providers by name; resolves `provider/model` strings."""

    def __init__(self, providers: list[Provider], default_model: str, *, detect: Sequence[Provider] = (),
                 list_ttl_s: float = LIST_TTL_S, list_timeout_s: float = LIST_TIMEOUT_S) -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.default_model = default_model
        # Offered only once their server answers a listing (an Ollama nobody configured); a configured one wins.
        self._detect = [p for p in detect if p.name not in self.providers]
        self.list_ttl_s = list_ttl_s
        self.list_timeout_s = list_timeout_s
        self._listed: dict[str, tuple[float, list[str]]] = {}  # provider → (when asked, what it listed)

    @classmethod
    def from_settings(cls, settings: Any) -> Registry:
        """The standard set: local, openai, named compatible servers, anthropic, bedrock, scripted."""
        secret = _secret
        providers: list[Provider] = [
            LocalProvider(model_path=settings.local_model_path, n_ctx=settings.local_context,
                          n_threads=settings.local_threads),
            OpenAICompatProvider(name="openai", api_key=secret(settings.openai_api_key),
                                 base_url=settings.openai_base_url,
                                 timeout_s=settings.provider_timeout_s),
        ]
        for name, ep in settings.compat_endpoints.items():
            providers.append(OpenAICompatProvider(
                name=name, api_key=secret(ep.api_key), base_url=ep.base_url, models=ep.models,
                key_required=False, supports_tools=ep.supports_tools,
                timeout_s=settings.provider_timeout_s))
        providers += [
            AnthropicProvider(api_key=secret(settings.anthropic_api_key),
                              timeout_s=settings.provider_timeout_s),
            BedrockProvider(region=settings.aws_region, models=settings.bedrock_models,
                            timeout_s=settings.provider_timeout_s),
            ScriptedProvider(settings.scripts),
        ]
        detect = [] if "ollama" in settings.compat_endpoints else [ollama_nearby(settings.provider_timeout_s)]
        return cls(providers, settings.default_model, detect=detect)

    def resolve(self, model_id: str | None, *, check_available: bool = True) -> tuple[Provider, str]:
        """The provider and model name for `provider/model`, or our error saying what is wrong."""
        model_id = (model_id or self.default_model).strip()
        provider_name, _, model = model_id.partition("/")
        provider = self.providers.get(provider_name)
        if provider is None or not model:
            known = ", ".join(sorted(self.providers))
            raise UnknownModel(f"Unknown model '{model_id}': use provider/model with a provider of {known}")
        if not provider.accepts(model):
            raise UnknownModel(f"Unknown model '{model_id}': {provider_name} offers "
                               f"{', '.join(provider.models())}")
        if check_available and (reason := provider.unavailable_reason()) is not None:
            raise ProviderAuth(f"{model_id} is not available: {reason}")
        return provider, model

    async def list_models_live(self) -> list[ModelInfo]:
        """Every model the servers list (asked at most every `list_ttl_s`), for pickers and `GET /api/models`."""
        now = time.monotonic()
        candidates = {p.name: p for p in [*self._detect, *self.providers.values()]}
        due = [p for p in candidates.values() if self._due(p, now)]
        if due:
            await asyncio.gather(*(self._refresh(p) for p in due))
        return self.list_models()

    def list_models(self) -> list[ModelInfo]:
        """Every model with availability, without waiting: the servers' lists as last fetched, else built-in names."""
        # The configured default is always in it, even when its server does not list it (pickers keep it).
        infos: list[ModelInfo] = []
        for provider in self.providers.values():
            known = provider.info()
            if provider.name not in self._listed:
                infos += known
                continue
            by_id = {i.id: i for i in known}  # a provider's own view of a model it knows wins
            infos += [by_id.get(f"{provider.name}/{m}") or _info(provider, m) for m in self._listed[provider.name][1]]
        return self._with_default(infos)

    @property
    def scripted(self) -> ScriptedProvider:
        """The scripted provider (tests and demos load scripts into it)."""
        provider = self.providers["scripted"]
        assert isinstance(provider, ScriptedProvider)
        return provider

    def _due(self, provider: Provider, now: float) -> bool:
        """Whether to ask this provider's server for its models now."""
        listed = self._listed.get(provider.name)
        if listed is not None and now - listed[0] < self.list_ttl_s:
            return False
        return provider.unavailable_reason() is None

    async def _refresh(self, provider: Provider) -> None:
        """Ask one server for its models, briefly; keep the answer, or the built-in names if it gives none."""
        detecting = provider.name not in self.providers
        try:
            async with asyncio.timeout(self.list_timeout_s):
                names: list[str] | None = await provider.list_models()
        except Exception as exc:  # a listing is a convenience: whatever fails, the picker shows the built-in names
            log.debug("listing %s's models failed: %s", provider.name, type(exc).__name__)
            names = None
        if names is None:
            names = [] if detecting else provider.models()
        elif detecting:
            log.info("found %s: offering its %d models", provider.name, len(names))
            self.providers[provider.name] = provider
        self._listed[provider.name] = (time.monotonic(), names)

    def _with_default(self, infos: list[ModelInfo]) -> list[ModelInfo]:
        """The list with the configured default in it (after its provider's models), so no picker replaces it."""
        if any(i.id == self.default_model for i in infos):
            return infos
        provider_name, _, model = self.default_model.partition("/")
        provider = self.providers.get(provider_name)
        if provider is None:
            info = ModelInfo(id=self.default_model, provider=provider_name, available=False, supports_tools=False,
                             reason=f"no provider named '{provider_name}' is configured")
        elif not provider.accepts(model):
            info = ModelInfo(id=self.default_model, provider=provider_name, available=False, supports_tools=False,
                             reason=f"{provider_name} offers no model '{model}'")
        else:
            info = _info(provider, model)
        last = max((n for n, i in enumerate(infos) if i.provider == provider_name), default=len(infos) - 1)
        return [*infos[:last + 1], info, *infos[last + 1:]]


def ollama_nearby(timeout_s: float, base_url: str = OLLAMA_URL) -> OpenAICompatProvider:
    """An Ollama on this machine, through its OpenAI-compatible API; offered once it lists its models."""
    return OpenAICompatProvider(name="ollama", api_key=None, base_url=base_url, models=[], key_required=False,
                                timeout_s=timeout_s)


def _info(provider: Provider, model: str) -> ModelInfo:
    """One model of a provider, with the provider's availability."""
    reason = provider.unavailable_reason()
    return ModelInfo(id=f"{provider.name}/{model}", provider=provider.name, available=reason is None,
                     reason=reason, supports_tools=provider.supports_tools)


def _secret(value: Any) -> str | None:
    """A SecretStr's value, only at the point of use."""
    return value.get_secret_value() if value is not None else None
