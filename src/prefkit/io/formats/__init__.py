"""Format adapters. Importing this package registers every format in ``REGISTRY``."""

from prefkit.io.formats import (  # noqa: F401  (imported for their registrations)
    arena,
    generic,
    helpsteer,
    hh,
    imagereward,
    likert,
    oasst,
    shp,
    trl,
    ukp,
    ultrafeedback,
)
from prefkit.io.formats.base import REGISTRY, Format, get_format

__all__ = ["REGISTRY", "Format", "get_format"]
