"""The Dagster code location (`pipelines/definitions.py`) and what it is made of."""

# The cyclic collector's threshold is set by the domain package, imported first by every entry
# point (engagement_box/__init__.py): the code location's processes import it here, before
# Dagster.
import engagement_box  # noqa: F401
