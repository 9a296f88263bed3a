"""Which fitted estimator of the notebook becomes the model, and which held-out rows go with it.

The rule, in order (documented in the README of every converted project):

1. The user's own choice wins: a `# mlship: model=NAME` comment anywhere in the notebook, or the estimator
   fitted in a cell tagged `mlship-model`.
2. Candidates are the fitted estimators reachable from the notebook's variables (deduplicated by identity;
   IPython's output cache `_`, `__`, `_3`, `Out` is not a variable; pipeline steps and ensemble members
   belong to their pipeline/ensemble). Those consistent with a held-out pair of the kernel (X_test/y_test,
   X_val/y_val, …: the columns the model takes now and labels among its classes) come first, and models
   trained in the notebook before models loaded from a file (often a reloaded copy of the trained one).
3. The refit best estimator of a search (GridSearchCV, RandomizedSearchCV, …) beats a plain estimator.
4. Among those, the one fitted last wins (cell order, then statement order within the cell).
5. When several were fitted by the same statement (a loop over models) and not exactly one of them has a
   name of its own outside the loop, the rule cannot decide: mlship lists them and asks.
"""

from __future__ import annotations

from pydantic import BaseModel

from mlship.errors import NotebookError

HELD_PREFERENCE = (
    "test",
    "tst",
    "holdout",
    "heldout",
    "hold",
    "ho",
    "val",
    "valid",
    "validation",
    "dev",
    "eval",
)
HOW_TO_PICK = (
    "tag the cell that fits your model with 'mlship-model' (View → Cell Toolbar → Tags), or add a comment "
    "'# mlship: model=NAME' to the notebook, then convert again"
)


class Pair(BaseModel):
    """A train or held-out (X, y) pair of the notebook's variables, and whether an estimator fits it."""

    x: str
    y: str
    split: str  # heldout, train or all
    rows: int
    exact: bool = True
    consistent: bool = False
    why: str = ""
    score: float | None = None  # accuracy or R² of the estimator on (part of) the pair

    @property
    def key(self) -> str:
        return f"{self.x}|{self.y}"


class Candidate(BaseModel):
    """A fitted estimator found in the kernel, with what the rule needs to know about it."""

    id: int
    aliases: list[str]
    vias: list[str] = []
    search: str | None = None
    search_type: str | None = None
    type: str
    description: str = ""
    task: str
    classes: list[object] | None = None
    features: list[str] | None = None
    n_features: int | None = None
    proba: bool = False
    decision: bool = False
    fit_cell: int = -1  # notebook cell index (0-based) after which its fitted state last changed
    fit_statement: int = -1  # top-level statement of that cell
    scratch: bool = False  # reached only as a loop variable or a list/dict element
    loaded: bool = False  # last "fitted" by loading a saved model (often a copy of one trained above)
    pairs: list[Pair] = []

    @property
    def name(self) -> str:
        """The name to show: a plain variable if it has one, else the first alias."""
        plain = [alias for alias, via in zip(self.aliases, self.vias, strict=False) if via == "name"]
        return (plain or self.aliases)[0]

    @property
    def heldout(self) -> list[Pair]:
        return [pair for pair in self.pairs if pair.split == "heldout" and pair.consistent]

    def label(self) -> str:
        """'grid.best_estimator_ (Pipeline(…), cell 12)'."""
        where = f", cell {self.fit_cell + 1}" if self.fit_cell >= 0 else ""
        return f"{self.name} ({self.description or self.type}{where})"


class Choice(BaseModel):
    """The model the project ships, the held-out pair it is tested on, and why it was chosen."""

    candidate: Candidate
    heldout: Pair | None
    train: Pair | None
    reason: str
    others: list[Candidate]


def _held_rank(pair: Pair) -> tuple[int, int, int]:
    words = pair.x.lower().replace("-", "_")
    rank = next(
        (len(HELD_PREFERENCE) - position for position, word in enumerate(HELD_PREFERENCE) if word in words), 0
    )
    return (1 if pair.exact else 0, rank, pair.rows)


SCORE_TOLERANCE = 0.02


def best_heldout(candidate: Candidate) -> Pair | None:
    """The held-out pair to test on: among those the model scores best on (within 0.02: a model trained on
    scaled columns, or on a log target, scores far worse on the raw ones), names that match exactly, 'test'
    before 'val', then the most rows."""
    pairs = candidate.heldout
    if not pairs:
        return None
    scores = [pair.score for pair in pairs if pair.score is not None]
    if scores:
        best = max(scores)
        pairs = [pair for pair in pairs if pair.score is None or pair.score >= best - SCORE_TOLERANCE]
    return max(pairs, key=_held_rank)


def best_train(candidate: Candidate, heldout: Pair | None) -> Pair | None:
    """The training pair that goes with the held-out one (X_train for X_test), for schema.json."""
    pairs = [pair for pair in candidate.pairs if pair.split == "train" and pair.consistent]
    if not pairs:
        return None

    def similarity(pair: Pair) -> tuple[int, int]:
        same = 0
        if heldout is not None:
            strip = [heldout.x.lower()]
            for word in HELD_PREFERENCE:
                strip = [text.replace(word, "") for text in strip]
            same = int(strip[0] == _without_train(pair.x.lower()))
        return same, pair.rows

    return max(pairs, key=similarity)


def _without_train(name: str) -> str:
    for word in ("training", "train", "trn", "tr"):
        name = name.replace(word, "")
    return name


def _listed(candidates: list[Candidate]) -> str:
    return ", ".join(candidate.label() for candidate in candidates)


def choose(
    candidates: list[Candidate],
    *,
    explicit: list[int] | None = None,
    explicit_source: str = "",
) -> Choice:
    """Apply the rule. `explicit` are candidate ids the user named (comment or tag), in notebook order.

    Raises NotebookError when there is no candidate, or when the rule cannot decide (the message lists the
    candidates and says how to pick one).
    """
    if not candidates:
        raise NotebookError(
            "no fitted estimator found", hint="fit a scikit-learn compatible model in the notebook"
        )
    if explicit:
        chosen = next(candidate for candidate in candidates if candidate.id == explicit[-1])
        heldout = best_heldout(chosen)
        return Choice(
            candidate=chosen,
            heldout=heldout,
            train=best_train(chosen, heldout),
            reason=f"chosen by the notebook itself ({explicit_source})",
            others=[candidate for candidate in candidates if candidate.id != chosen.id],
        )
    eligible = [candidate for candidate in candidates if candidate.heldout]
    pool = eligible or candidates
    pool = [candidate for candidate in pool if not candidate.loaded] or pool
    searches = [candidate for candidate in pool if candidate.search]
    ranked = searches or pool

    def order(candidate: Candidate) -> tuple[int, int]:
        return candidate.fit_cell, candidate.fit_statement

    last = max(order(candidate) for candidate in ranked)
    tied = [candidate for candidate in ranked if order(candidate) == last]
    if len(tied) > 1:
        named = [candidate for candidate in tied if not candidate.scratch]
        if len(named) != 1:
            where = f"cell {tied[0].fit_cell + 1}" if tied[0].fit_cell >= 0 else "the same cell"
            raise NotebookError(
                f"cannot decide which model to ship: {len(tied)} estimators were fitted by the same "
                f"statement in {where}: {_listed(tied)}",
                hint=HOW_TO_PICK,
            )
        tied = named
    chosen = tied[0]
    heldout = best_heldout(chosen)
    reason = (
        f"the refit best estimator of {chosen.search_type or 'the search'} `{chosen.search}`"
        if chosen.search
        else "the estimator fitted last"
    )
    if heldout is not None:
        reason += f", consistent with the held-out pair {heldout.x}/{heldout.y}"
    elif not eligible:
        reason += " (no held-out pair of the notebook matches any model)"
    return Choice(
        candidate=chosen,
        heldout=heldout,
        train=best_train(chosen, heldout),
        reason=reason,
        others=[candidate for candidate in candidates if candidate.id != chosen.id],
    )
