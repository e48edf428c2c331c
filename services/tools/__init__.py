"""Tools an assistant can call: a name, a description, a JSON schema for arguments, an async function."""
