"""The error a run's setup raises for a setting or folder that cannot work, before any step
writes (the resources' checks, the run lock). Its own module: the resources and the run lock
(`pipelines/runs.py`) both raise it."""


class ConfigurationError(Exception):
    """A setting points at something that is not there; the message says which and what to do."""
