"""Exceptions that carry a message meant for the user, not a traceback from deep inside a library."""


class InputError(ValueError):
    """Bad input data or configuration: the message names the file or key and says what is wrong."""


class ConfigError(InputError):
    """A configuration file does not match the schema or is inconsistent."""
