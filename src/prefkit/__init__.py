"""prefkit: the data engine for learning from human feedback.

Load any preference dataset into one data model, inspect it, curate it, and learn from it.

>>> import prefkit
>>> ds = prefkit.synth.simulate(kind="pairwise", n_prompts=20, seed=0)   # doctest: +SKIP
>>> pairs = ds.to_pairs(ties="drop", annotators="each")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from prefkit import synth
from prefkit.dataset import Dataset, Manifest
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import convert, from_pairs, load, save

__all__ = [
    "Dataset",
    "InputError",
    "Manifest",
    "PrefkitError",
    "__version__",
    "convert",
    "from_pairs",
    "load",
    "save",
    "synth",
]
