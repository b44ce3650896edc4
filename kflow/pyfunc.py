"""``python -m kflow.pyfunc FILE FUNCTION``: run a task defined by a decorated Python function.

The function gets the keyword arguments it declares: the instance's parameters
(as text, from ``KFLOW_PARAMS``), ``inputs`` (a list of locations) and
``outputs`` (a dict of output name to location). A non-zero integer return
value becomes the exit code.
"""

from __future__ import annotations

import inspect
import json
import os
import runpy
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m kflow.pyfunc FILE FUNCTION\n")
        return 2
    path, name = argv
    namespace = runpy.run_path(path, run_name="__kflow_task__")
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
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
