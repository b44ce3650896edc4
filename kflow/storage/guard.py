"""The last check before kflow deletes anything: a second guard, independent of the definitions'.

The graph already refuses outputs outside the project's reach (exit 2 before anything
runs). This guard does not trust that: clean-up after a failed attempt and
``kflow clean`` pass every location through it, and it refuses, whatever the cause,
anything outside the project folder and ``{root}``, the project folder itself,
``{root}`` itself, ``{root}/.kflow``, anything that is or holds a definition file,
and anything that is, holds or lies inside a source input of any task (whether or not
that task is planned).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from kflow.paths import PatternIndex, Place, PlacePattern, Reach, place_of


class DeletionGuard:
    """Decides which locations kflow may delete for one project."""

    def __init__(
        self,
        project_dir: str | os.PathLike[str],
        root: str,
        protected: Iterable[str] = (),
        patterns: Iterable[PlacePattern] = (),
    ):
        self.project_dir = os.path.normpath(os.path.abspath(project_dir))
        self.reach = Reach(self.project_dir, root)
        self.protected: list[tuple[Place, str]] = [
            (place_of(os.fspath(p), self.project_dir), os.fspath(p)) for p in protected
        ]
        # Every task's source inputs (globs, parameters as wildcards): never deleted, nor a
        # folder holding one, nor anything inside an input folder.
        self.patterns = PatternIndex(list(patterns))

    def problem(self, location: str) -> str | None:
        """Why ``location`` may not be deleted; None when it may."""
        place = place_of(location, self.project_dir)
        problem = self.reach.problem(place)
        if problem is not None:
            return problem
        for kept, name in self.protected:
            if place.holds(kept):
                return f"is or holds {name}, which kflow never deletes"
        found = self.patterns.touching(place)
        if found is not None:
            return f"is, holds or lies inside {found.text}, which kflow never deletes"
        return None

    def split(self, locations: Iterable[str]) -> tuple[list[str], dict[str, str]]:
        """The locations that may be deleted, and the refused ones with the reason."""
        allowed: list[str] = []
        refused: dict[str, str] = {}
        for location in locations:
            problem = self.problem(location)
            if problem is None:
                allowed.append(location)
            else:
                refused[location] = problem
        return allowed, refused
