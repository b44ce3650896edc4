"""The hashes a record is written with are the hashes a plan checks it against."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kflow.errors import Location
from kflow.model import EnvVar, Instance, InstanceId, Resources, TaskSpec
from kflow.state import fingerprint, fingerprint_parts, fingerprints, inputs_digest, inputs_digests
from kflow.storage import Stamp

text = st.text(min_size=1, max_size=8)
names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@st.composite
def instances(draw: st.DrawFn) -> list[Instance]:
    env_refs = draw(st.lists(st.tuples(names, text, text), max_size=2, unique_by=lambda e: e[0]))
    task = TaskSpec(
        name=draw(names),
        command=("true",),
        location=Location("kflow.toml"),
        image=draw(st.none() | text),
        env=tuple(EnvVar(n, secret=(s, k)) for n, s, k in env_refs),
        env_from=tuple(draw(st.lists(text, max_size=2))),
        resources=Resources(gpu=draw(st.integers(0, 2))),
    )
    made = []
    for index in range(draw(st.integers(1, 4))):
        drawn = draw(st.dictionaries(names, text, max_size=3))
        params = tuple(sorted({**drawn, "n": str(index)}.items()))  # ids are unique
        made.append(
            Instance(
                id=InstanceId(task.name, params),
                task=task,
                values=dict(params),
                argv=tuple(draw(st.lists(text, min_size=1, max_size=4))),
                outputs={},
                source_inputs=(),
                requires=(),
                inputs=tuple(draw(st.lists(text, max_size=4))),
                env=draw(st.dictionaries(names, text, max_size=3)),
            )
        )
    return made


@given(instances())
@settings(max_examples=60, deadline=None)
def test_the_fingerprint_a_record_is_written_with_is_the_one_a_plan_compares(
    batch: list[Instance],
) -> None:
    checked = fingerprints(batch)
    for instance in batch:
        assert fingerprint(fingerprint_parts(instance)) == checked[instance.id]


@given(instances(), st.lists(st.none() | st.integers(0, 10**6), min_size=16, max_size=16))
@settings(max_examples=60, deadline=None)
def test_the_inputs_digest_a_record_is_written_with_is_the_one_a_plan_compares(
    batch: list[Instance], sizes: list[int | None]
) -> None:
    locations = sorted({loc for instance in batch for loc in instance.inputs})
    stamps: dict[str, Stamp | None] = {
        loc: None if size is None else Stamp(size, 1.5, None)
        for loc, size in zip(locations, sizes, strict=False)
    }
    checked = inputs_digests(batch, stamps)
    for instance in batch:
        assert inputs_digest(instance.inputs, stamps) == checked[instance.id]
