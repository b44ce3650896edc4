"""The last check before kflow deletes anything: a second guard, independent of the definitions'.

The graph already refuses outputs outside the project's reach (exit 2 before anything
runs). This guard does not trust that: clean-up after a failed attempt and
``kflow clean`` pass every location through it, and it refuses, whatever the cause,
anything outside the project folder and ``{root}``, the project folder itself,
``{root}`` itself, ``{root}/.kflow``, anything that is or holds a definition file,
anything that is, holds or lies inside a source input of any task (whether or not
that task is planned), and anything in a folder that a symbolic link takes outside the
project folder and ``{root}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from kflow.paths import LOCAL, RECORDS, PatternIndex, Place, PlacePattern, Reach, place_of


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
        # Folders as the file system resolves them: a symlink in {root} may point elsewhere.
        self._real: list[str] | None = None

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
        if place.scheme == LOCAL:
            return self._symlinked(place)
        return None

    def _symlinked(self, place: Place) -> str | None:
        """The checks above read paths as written; the file system follows symbolic links.
        Deleting through a linked folder that resolves outside the project folder and
        {root} (or into kflow's records) is refused; a link that is itself the output is
        removed as a link, never followed."""
        if self._real is None:
            root = self.reach.root
            self._real = [os.path.realpath(self.project_dir)]
            if root.scheme == LOCAL:
                self._real.append(os.path.realpath(root.path))
        parent = os.path.realpath(os.path.dirname(place.path))
        if not any(
            parent == real or parent.startswith(real.rstrip("/") + "/") for real in self._real
        ):
            return f"lies in a folder that a symbolic link takes outside the project ({parent})"
        records = [os.path.join(real, RECORDS) for real in self._real[1:]]
        target = os.path.join(parent, os.path.basename(place.path))
        if any(target == r or target.startswith(r + "/") for r in records):
            return "resolves through a symbolic link into kflow's records"
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
