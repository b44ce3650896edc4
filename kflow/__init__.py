"""kflow: the Make of Kubernetes workflows.

Define tasks in ``kflow.toml`` or in Python::

    from kflow import task

    task("clean", command="python clean.py {input} {output}", requires=["extract"],
         outputs=["{root}/clean/{date}.csv"])
"""

from kflow.load.python import defaults, param, profile, project, task

__version__ = "0.1.0"
__all__ = ["__version__", "defaults", "param", "profile", "project", "task"]
