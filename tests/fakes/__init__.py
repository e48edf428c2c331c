"""Fakes: real implementations of interfaces, fed a script (no mocks of SDK internals)."""
