"""The project's exception hierarchy; the CLI maps each kind to an exit code."""


class LlmopsError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 2


class ConfigError(LlmopsError):
    """A sweep file, prompt template or option is invalid (exit code 2)."""


class DataError(LlmopsError):
    """A corpus or evaluation dataset is missing or malformed (exit code 2)."""


class ProviderError(LlmopsError):
    """A model provider could not be reached or answered badly."""

    exit_code = 1


class CheckFailed(LlmopsError):
    """A run finished but a check failed: a regression or a budget (exit code 1)."""

    exit_code = 1
