"""normalize: every catalog metric in its canonical unit (processors/unit_catalog.yaml).

Bad units and impossible values are rejected one metric at a time; metrics the catalog does
not know pass through unchanged. The catalog is read once, when the worker starts.
"""

from __future__ import annotations

from processors.steps import Step, StepContext
from processors.units import UnitCatalog


def make_step(context: StepContext) -> Step:
    """The `normalize` step over the configured catalog (raises CatalogError when wrong)."""
    return UnitCatalog.load(context.settings.process_unit_catalog_file).normalize
