"""The error type for configuration mistakes, importable from every layer (models included)."""


class ConfigError(ValueError):
  """A configuration mistake; commands print its message as one line instead of a traceback."""
