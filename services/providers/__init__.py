"""LLM providers: one module each, a registry by `provider/model`, and a fallback chain."""
