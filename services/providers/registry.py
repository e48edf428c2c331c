"""Providers looked up by `provider/model`; built once from the settings."""

from __future__ import annotations

from typing import Any

from services.errors import ProviderAuth, UnknownModel
from services.providers.anthropic_provider import AnthropicProvider
from services.providers.base import ModelInfo, Provider
from services.providers.bedrock import BedrockProvider
from services.providers.local import LocalProvider
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.scripted import ScriptedProvider


class Registry:
    """All providers by name; resolves `provider/model` strings."""

    def __init__(self, providers: list[Provider], default_model: str) -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.default_model = default_model

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
            BedrockProvider(region=settings.aws_region, models=settings.bedrock_models),
            ScriptedProvider(settings.scripts),
        ]
        return cls(providers, settings.default_model)

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

    def list_models(self) -> list[ModelInfo]:
        """Every listed model with availability, for pickers and `GET /api/models`."""
        return [info for p in self.providers.values() for info in p.info()]

    @property
    def scripted(self) -> ScriptedProvider:
        """The scripted provider (tests and demos load scripts into it)."""
        provider = self.providers["scripted"]
        assert isinstance(provider, ScriptedProvider)
        return provider


def _secret(value: Any) -> str | None:
    """A SecretStr's value, only at the point of use."""
    return value.get_secret_value() if value is not None else None
