"""Cutting a result list into numbered pages for an embed or the CLI.

Pages are numbered from 1 because that is what people see ("page 2 of 5"), and a
page number out of range is clamped rather than refused: after a refresh a list
may have shrunk under a view that still shows "Next".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and where it sits among the others."""

    items: tuple[T, ...]
    number: int
    """1-based, always within 1..count."""
    count: int
    """How many pages there are; 1 even when there are no results."""
    total: int
    per_page: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.count

    @property
    def first_index(self) -> int:
        """0-based position of the first item in the whole list ("11–20 of 37")."""
        return (self.number - 1) * self.per_page


def paginate(results: Sequence[T], page: int, per_page: int = 10) -> Page[T]:
    """The `page`-th slice of `results`, with `page` clamped to the pages that exist."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, not {per_page}")
    count = max(1, -(-len(results) // per_page))
    number = min(max(page, 1), count)
    start = (number - 1) * per_page
    return Page(
        items=tuple(results[start : start + per_page]),
        number=number,
        count=count,
        total=len(results),
        per_page=per_page,
    )
