"""Run a task defined by a decorated Python function: ``python -c BOOTSTRAP FILE FUNCTION``.

The attempt's command is ``python -c`` with :data:`BOOTSTRAP`, not ``python -m
kflow.pyfunc``: ``-m`` puts the working folder (the project) first on
``sys.path``, where a pure-Python project's own ``kflow.py`` would shadow this
package. The bootstrap drops that entry, imports kflow, and only then puts the
project folder back, so the user's file can still import its neighbours.

The function gets the keyword arguments it declares: the instance's parameters
(as text, from ``KFLOW_PARAMS``), ``inputs`` (a list of locations) and
``outputs`` (a dict of output name to location). A non-zero integer return
value becomes the exit code. An ``async def`` function runs with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import runpy
import sys

# Short on purpose: it is part of every such task's argv (and so of its fingerprint).
BOOTSTRAP = (
    "import sys; sys.path[:] = [p for p in sys.path if p]; "
    "from kflow.pyfunc import main; sys.exit(main(sys.argv[1:]))"
)
# The name the user's file runs under: never "kflow" or "__main__" (its guard stays off).
MODULE_NAME = "__kflow_task__"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m kflow.pyfunc FILE FUNCTION\n")
        return 2
    path, name = argv
    # kflow is imported now: the file's folder and the project folder (the working folder)
    # may come back, so the user's file imports its neighbours as it did while loading.
    for folder in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    namespace = runpy.run_path(path, run_name=MODULE_NAME)
    function = namespace.get(name)
    if not callable(function):
        sys.stderr.write(f"kflow.pyfunc: {path} defines no function {name!r}\n")
        return 2
    available = {
        **json.loads(os.environ.get("KFLOW_PARAMS", "{}")),
        "inputs": json.loads(os.environ.get("KFLOW_INPUTS", "[]")),
        "outputs": json.loads(os.environ.get("KFLOW_OUTPUTS", "{}")),
    }
    wanted = inspect.signature(function).parameters
    result = function(**{name: available[name] for name in wanted if name in available})
    if inspect.iscoroutine(result):  # an `async def` task: run it to its end
        result = asyncio.run(result)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
