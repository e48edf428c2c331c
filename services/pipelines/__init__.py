"""Pipeline definitions: the data model, parsing with clear errors, and the built-in ones."""
