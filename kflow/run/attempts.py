"""Small pure pieces of running an attempt: its environment, backoff, a log's tail."""

from __future__ import annotations

import json
import os

from kflow.model import Instance
from kflow.run.logtail import log_tail as log_tail  # one tail for every place (logtail)


def task_environment(instance: Instance, run_id: str) -> dict[str, str]:
    """What a task sees besides the executor's own environment (SPEC §4: KFLOW_*)."""
    params = instance.id.param_dict
    env = dict(instance.env)
    env.update(
        {
            "KFLOW_RUN": run_id,
            "KFLOW_TASK": str(instance.id),
            "KFLOW_PARAMS": json.dumps(params, sort_keys=True),
            "KFLOW_INPUTS": json.dumps(list(instance.inputs)),
            "KFLOW_OUTPUTS": json.dumps(dict(instance.outputs)),
        }
    )
    for name, value in params.items():
        env[f"KFLOW_PARAM_{name.upper()}"] = value
    return env


def backoff(retry_delay: float, failed_attempts: int, cap: float) -> float:
    """``retry_delay`` doubled after each failed attempt, capped."""
    return float(min(cap, retry_delay * (2 ** max(0, failed_attempts - 1))))


def default_kill_grace() -> float:
    """``KFLOW_KILL_GRACE`` seconds if set, else 5: SIGTERM to SIGKILL on interrupt."""
    try:
        return float(os.environ.get("KFLOW_KILL_GRACE", "5"))
    except ValueError:
        return 5.0
