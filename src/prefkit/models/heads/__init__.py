"""Reward and preference heads, one module per head (see :mod:`prefkit.models.heads.base`).

This package's own namespace is torch-free, so the CLI can list the heads without
loading torch.
"""

#: Modules that register heads, in the order the registry lists them; each module is
#: named after the head it registers.
HEAD_MODULES = ("bt", "ties", "robust", "pl", "gpm", "pal", "attr")
