"""The inspect checks, one module each; importing this package registers them in
report order (so the imports are not sorted)."""

# isort: skip_file

from prefkit.diagnostics.checks import (  # noqa: F401
    shape,
    bias,
    duplicates,
    agreement,
    cycles,
    noise,
    groups,
    ratings,
    coverage,
)
