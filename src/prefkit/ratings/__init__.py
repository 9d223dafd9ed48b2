"""Arena ratings: Bradley–Terry with ties on aggregated battle counts, bootstrap and
analytic intervals, style control, Plackett–Luce for rankings and online Elo.

>>> from prefkit.ratings import BattleCounts, BradleyTerry, bootstrap
>>> counts = BattleCounts.from_dataset(ds)                    # doctest: +SKIP
>>> bt = BradleyTerry(ties="half").fit(counts)                # doctest: +SKIP
>>> board = bootstrap(counts, bt, rounds=1000, seed=0)        # doctest: +SKIP
>>> board.to_table()                                          # doctest: +SKIP

``leaderboard`` runs the whole ``prefkit arena`` computation. See docs/arena.md,
docs/ratings.md and docs/ratings-pl-elo-style.md.
"""

from prefkit.ratings.analytic import analytic_intervals
from prefkit.ratings.arena import ArenaReport, leaderboard
from prefkit.ratings.battles import BattleCounts
from prefkit.ratings.bootstrap import bootstrap
from prefkit.ratings.bradley_terry import BradleyTerry
from prefkit.ratings.elo import Elo
from prefkit.ratings.likelihood import TIES
from prefkit.ratings.plackett_luce import PlackettLuce
from prefkit.ratings.result import ArenaResult, arena_ranks
from prefkit.ratings.style import StyleControl

__all__ = [
    "TIES",
    "ArenaReport",
    "ArenaResult",
    "BattleCounts",
    "BradleyTerry",
    "Elo",
    "PlackettLuce",
    "StyleControl",
    "analytic_intervals",
    "arena_ranks",
    "bootstrap",
    "leaderboard",
]
