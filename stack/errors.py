"""The one error of the stack reader."""


class SettingsError(ValueError):
    """template.yaml or samconfig.toml cannot configure the stack; the message says where."""
