"""The curation steps, one module per concept; importing this package registers them."""

# isort: skip_file
from prefkit.curation.steps import (  # noqa: F401
    dedup,
    decontaminate,
    filters,
    labels,
    pairs,
    relabel,
    select,
    curriculum,
    splits,
)
