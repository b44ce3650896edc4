"""Tasks defined in Python: the same keys as a [tasks.NAME] table, with loops if you need them."""

from kflow import task

task(
    "totals",
    description="Revenue per region over every date of the run (fan-in over dates)",
    requires=["report"],
    command=["python", "scripts/totals.py", "{output}", "{inputs.report}"],
    inputs=["scripts/totals.py"],
    outputs=["{root}/totals.csv"],
)
