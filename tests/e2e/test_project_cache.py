"""The load cache (.kflow/cache): a second run after changing any one input of the load sees
the change, and a cache file that cannot be read is survived and rewritten."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import kflow, write_project

TOML = """\
[project]
storage = "file://./data"

[params]
region = "eu"

[tasks.make]
command = ["sh", "-c", "echo {region} > {output}"]
outputs = ["{root}/{region}.txt"]
"""

OTHER = '[tasks.other]\ncommand = ["sh", "-c", "echo > {output}"]\noutputs = ["{root}/o"]\n'


def cache_files(folder: Path) -> list[Path]:
    return sorted((folder / ".kflow" / "cache").glob("*.pickle"))


def plan(folder: Path, *args: str) -> str:
    result = kflow("plan", "-C", str(folder), *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def run(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """kflow in its own process (so that a kflow.py imports its modules afresh), from the
    folder above the project: a kflow.py in the current folder would shadow the package."""
    return subprocess.run(
        [sys.executable, "-m", "kflow", *args, "-C", str(folder)],
        cwd=folder.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def py_plan(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run(folder, "plan", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_cache_is_kept_in_the_project_folder_and_used(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    first = plan(tmp_path)
    assert "make[region=eu]" in first
    assert len(cache_files(tmp_path)) == 1
    assert plan(tmp_path) == first


def test_an_edited_command_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    assert kflow("build", "-C", str(tmp_path)).exit_code == 0
    assert "up to date" in plan(tmp_path)
    (tmp_path / "kflow.toml").write_text(TOML.replace("echo {region}", "echo {region}!"))
    assert "1 of 1 instance would run" in plan(tmp_path)


def test_an_edit_keeping_size_and_stamp_is_seen(tmp_path: Path) -> None:
    """Same size, and the file's times put back: the content digest of a file changed just
    before it was read still tells."""
    write_project(tmp_path, TOML)
    path = tmp_path / "kflow.toml"
    before = path.stat()
    assert "make[region=eu]" in plan(tmp_path)
    path.write_text(TOML.replace('region = "eu"', 'region = "us"'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "make[region=us]" in plan(tmp_path)


def test_an_added_task_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    assert "other" not in plan(tmp_path)
    with (tmp_path / "kflow.toml").open("a") as stream:
        stream.write("\n" + OTHER)
    assert "other" in plan(tmp_path, "other")


INCLUDING = TOML.replace(
    'storage = "file://./data"', 'storage = "file://./data"\ninclude = ["more/*.toml"]'
)
EXTRA = '[tasks.extra]\ncommand = ["sh", "-c", "echo one > {output}"]\noutputs = ["{root}/x"]\n'


def test_an_edited_included_file_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, INCLUDING, **{"more__a.toml": EXTRA})
    assert kflow("build", "-C", str(tmp_path), "extra").exit_code == 0
    assert "up to date" in plan(tmp_path, "extra")
    (tmp_path / "more" / "a.toml").write_text(EXTRA.replace("one", "two"))
    assert "1 of 1 instance would run" in plan(tmp_path, "extra")


def test_an_error_in_an_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    write_project(tmp_path, INCLUDING, **{"more__a.toml": EXTRA})
    plan(tmp_path, "extra")
    (tmp_path / "more" / "a.toml").write_text(EXTRA + "colour = 1\n")
    result = kflow("plan", "-C", str(tmp_path), "extra")
    assert result.exit_code == 2
    assert "a.toml:4: tasks.extra.colour: unknown key" in result.output


def test_a_new_file_matching_an_include_pattern_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, INCLUDING, **{"more__a.toml": EXTRA})
    assert "extra" in plan(tmp_path, "extra")
    (tmp_path / "more" / "b.toml").write_text(OTHER.replace("other", "extra2"))
    assert "extra2" in plan(tmp_path, "extra2")
    (tmp_path / "more" / "b.toml").unlink()
    result = kflow("plan", "-C", str(tmp_path), "extra2")
    assert result.exit_code == 2 and "extra2" in result.output


def test_a_changed_param_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    assert "make[region=eu]" in plan(tmp_path)
    assert "make[region=us]" in plan(tmp_path, "-p", "region=us")
    assert "make[region=eu]" in plan(tmp_path)


def test_changed_targets_are_seen(tmp_path: Path) -> None:
    write_project(tmp_path, TOML + "\n" + OTHER)
    assert "other" in plan(tmp_path, "other")
    assert "other" not in plan(tmp_path, "make")


def test_a_changed_profile_is_seen(tmp_path: Path) -> None:
    write_project(tmp_path, TOML + '\n[profiles.us.env]\nREGION_NAME = "us"\n')
    assert kflow("build", "-C", str(tmp_path)).exit_code == 0
    assert "up to date" in plan(tmp_path)
    # the profile's variable is part of the instance's fingerprint: it would run again
    assert "1 of 1 instance would run" in plan(tmp_path, "--profile", "us")
    assert "up to date" in plan(tmp_path)


def test_a_changed_environment_variable_of_the_load_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, TOML.replace("file://./data", "memory://x"))
    monkeypatch.setenv("KFLOW_ALLOW_MEMORY_STORAGE", "1")
    assert "make[region=eu]" in plan(tmp_path)
    monkeypatch.delenv("KFLOW_ALLOW_MEMORY_STORAGE")
    result = kflow("plan", "-C", str(tmp_path))
    assert result.exit_code == 2
    assert "kflow.toml" in result.output and "memory://" in result.output


def test_the_current_folder_is_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Error messages show definition files relative to the current folder."""
    project = write_project(tmp_path / "p", TOML)
    monkeypatch.chdir(tmp_path)
    plan(project)
    bad = kflow("plan", "-C", str(project), "make[region=eu,x=1]")
    monkeypatch.chdir(project)
    again = kflow("plan", "make[region=eu,x=1]")
    assert bad.exit_code == again.exit_code == 2
    assert bad.output != again.output or "p/kflow.toml" not in again.output


def test_a_corrupt_or_truncated_cache_file_is_survived_and_rewritten(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    first = plan(tmp_path)
    (entry,) = cache_files(tmp_path)
    for damage in (b"not a pickle", entry.read_bytes()[:100], b"", pickle.dumps({"x": 1})):
        entry.write_bytes(damage)
        assert plan(tmp_path) == first
        (entry,) = cache_files(tmp_path)
        assert pickle.loads(entry.read_bytes()).key is not None  # rewritten whole


def test_an_unreadable_cache_folder_is_only_slower(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    (tmp_path / ".kflow").write_text("a file where the cache folder would be")
    assert "make[region=eu]" in plan(tmp_path)
    assert "make[region=eu]" in plan(tmp_path)


def test_kflow_no_cache_neither_reads_nor_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(tmp_path, TOML)
    monkeypatch.setenv("KFLOW_NO_CACHE", "1")
    assert "make[region=eu]" in plan(tmp_path)
    assert not (tmp_path / ".kflow").exists()


def test_errors_still_name_file_and_line_after_a_cached_run(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    plan(tmp_path)
    (tmp_path / "kflow.toml").write_text(TOML.replace("outputs = [", "colour = 1\noutputs = ["))
    result = kflow("plan", "-C", str(tmp_path))
    assert result.exit_code == 2
    assert "kflow.toml:9: tasks.make.colour" in result.output


def test_a_date_read_from_the_clock_is_read_again_on_another_day(tmp_path: Path) -> None:
    """An entry made on another day (as if: its graph is for 2000-01-01) is not used."""
    write_project(
        tmp_path,
        '[params]\nday = { type = "date", default = "today" }\n'
        '[tasks.daily]\ncommand = "echo {day}"\n',
    )
    today = plan(tmp_path, "--json")
    old = plan(tmp_path, "--json", "-p", "day=2000-01-01")
    assert "daily[day=2000-01-01]" in old and "daily[day=2000-01-01]" not in today
    entries = {p: pickle.loads(p.read_bytes()) for p in cache_files(tmp_path)}
    (dated,) = [p for p, e in entries.items() if "2000-01-01" not in repr(e.key)]
    (other,) = [e for p, e in entries.items() if "2000-01-01" in repr(e.key)]
    entry = entries[dated]
    forged = type(entry)(
        entry.key, entry.files, entry.globs, None, ("UTC", "2000-01-01"), other.payload
    )
    dated.write_bytes(pickle.dumps(forged))
    assert plan(tmp_path, "--json") == today


# --- Python definitions ------------------------------------------------------------


PY = """\
from kflow import project, task
from tables import TABLES

project(storage="file://./data")
for name in TABLES:
    task(f"load_{name}", command=["sh", "-c", f"echo {name} > {{output}}"],
         outputs=[f"{{root}}/{name}.txt"])
"""


def py_project(folder: Path, py: str = PY, tables: str = 'TABLES = ["a", "b"]\n') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kflow.py").write_text(textwrap.dedent(py))
    (folder / "tables.py").write_text(tables)
    return folder


def test_an_edited_module_imported_by_kflow_py_is_seen(tmp_path: Path) -> None:
    project = py_project(tmp_path / "p")
    assert "load_c" not in py_plan(project)
    assert len(cache_files(project)) == 1
    (project / "tables.py").write_text('TABLES = ["a", "b", "c"]\n')
    assert "load_c" in py_plan(project)


def test_an_environment_variable_read_by_kflow_py_is_seen(tmp_path: Path) -> None:
    project = py_project(
        tmp_path / "p",
        PY.replace("from tables import TABLES", "import os\nTABLES = os.environ['TABLES'].split()"),
    )
    assert "load_x" in py_plan(project, env={"TABLES": "x"})
    out = py_plan(project, env={"TABLES": "y"})
    assert "load_y" in out and "load_x" not in out


def test_an_edited_python_function_body_is_seen(tmp_path: Path) -> None:
    source = """\
    from kflow import task

    @task(outputs=["{root}/out.txt"])
    def produce(outputs):
        open(outputs["0"], "w").write("one")
    """
    project = tmp_path / "p"
    project.mkdir()
    (project / "kflow.py").write_text(textwrap.dedent(source))
    done = run(project, "build")
    assert done.returncode == 0, done.stderr
    assert "up to date" in py_plan(project)
    (project / "kflow.py").write_text(textwrap.dedent(source).replace('"one"', '"two"'))
    assert "1 of 1 instance would run" in py_plan(project)


def test_an_edited_requirement_function_is_seen(tmp_path: Path) -> None:
    source = """\
    import datetime as dt
    from kflow import param, task

    def shift(day):
        return day - dt.timedelta(days=1)

    param("day", type="date", default="2026-01-10")
    task("raw", command="echo {day}", params=["day"])
    task("report", command="echo {day}",
         requires=[{"task": "raw", "params": {"day": lambda day: shift(day)}}])
    """
    project = tmp_path / "p"
    project.mkdir()
    (project / "kflow.py").write_text(textwrap.dedent(source))
    assert "raw[day=2026-01-09]" in py_plan(project, "report", "--json")
    (project / "kflow.py").write_text(textwrap.dedent(source).replace("days=1", "days=2"))
    assert "raw[day=2026-01-08]" in py_plan(project, "report", "--json")
    assert "raw[day=2026-01-08]" in py_plan(project, "report", "--json")
    assert cache_files(project) == []  # a graph made by calling a function is never kept


def test_a_function_reading_an_object_without_stable_text_is_never_cached(
    tmp_path: Path,
) -> None:
    source = """\
    import datetime as dt
    from kflow import param, task

    class Shift:
        days = 1

    SHIFT = Shift()
    param("day", type="date", default="2026-01-10")
    task("raw", command="echo {day}", params=["day"])
    task("report", command="echo {day}",
         requires=[{"task": "raw", "params": {"day": lambda day: day - dt.timedelta(SHIFT.days)}}])
    """
    project = tmp_path / "p"
    project.mkdir()
    (project / "kflow.py").write_text(textwrap.dedent(source))
    assert "raw[day=2026-01-09]" in py_plan(project, "report", "--json")
    assert "raw[day=2026-01-09]" in py_plan(project, "report", "--json")
    assert cache_files(project) == []


# The tester's project: a chain of a task's own instances that ends where a value read by
# the lambda *when it is called* says (here through READ, one of the four cases below).
CHAIN = """\
import json
import os
from kflow import task, param
param("n", type="int", default=6)
task("env", command="sh -c 'echo {n} > {output}'", outputs=["{root}/env{n}.txt"],
     requires=[{"task": "env", "params": {"n": lambda n: n - 1 if n > READ else None}}])
"""


def chain_project(folder: Path, read: str, helpers: str | None = None) -> Path:
    folder.mkdir(parents=True)
    source = CHAIN.replace("READ", read)
    if helpers is not None:  # a module beside kflow.py, imported by it
        (folder / "helpers.py").write_text(helpers)
        source = "import helpers\n" + source
    (folder / "kflow.py").write_text(source)
    return folder


def instances(folder: Path, env: dict[str, str] | None = None) -> str:
    out = py_plan(folder, "env", env=env)
    return out.strip().splitlines()[-1]


def test_a_requirement_function_reading_an_environment_variable_sees_it_change(
    tmp_path: Path,
) -> None:
    project = chain_project(tmp_path / "p", 'int(os.environ.get("LIM", "3"))')
    assert instances(project, {"LIM": "3"}) == "4 of 4 instances would run"
    assert instances(project, {"LIM": "1"}) == "6 of 6 instances would run"
    assert cache_files(project) == []


def test_a_requirement_function_reading_a_file_sees_it_change(tmp_path: Path) -> None:
    read = 'int(open(os.path.dirname(__file__) + "/lim.txt").read())'
    project = chain_project(tmp_path / "p", read)
    (project / "lim.txt").write_text("3\n")
    assert instances(project) == "4 of 4 instances would run"
    (project / "lim.txt").write_text("1\n")
    assert instances(project) == "6 of 6 instances would run"


def test_a_requirement_function_reading_another_modules_attribute_sees_it_change(
    tmp_path: Path,
) -> None:
    project = chain_project(tmp_path / "p", "helpers.LIMIT", helpers="LIMIT = 3\n")
    assert instances(project) == "4 of 4 instances would run"
    (project / "helpers.py").write_text("LIMIT = 1  # edited\n")  # another size: a fresh .pyc
    assert instances(project) == "6 of 6 instances would run"


def test_a_requirement_function_calling_another_modules_function_sees_its_body_change(
    tmp_path: Path,
) -> None:
    project = chain_project(
        tmp_path / "p", "helpers.start()", helpers="def start():\n    return 3\n"
    )
    assert instances(project) == "4 of 4 instances would run"
    (project / "helpers.py").write_text("def start():\n    return 1  # edited\n")
    assert instances(project) == "6 of 6 instances would run"


def test_a_python_error_still_names_file_and_line_after_a_cached_run(tmp_path: Path) -> None:
    project = py_project(tmp_path / "p")
    py_plan(project)
    (project / "kflow.py").write_text(PY + 'task("bad", command="echo", colour=1)\n')
    done = run(project, "plan")
    assert done.returncode == 2
    assert "kflow.py:8" in done.stderr and "colour" in done.stderr


def test_two_processes_writing_the_cache_at_once_both_succeed(tmp_path: Path) -> None:
    project = py_project(tmp_path / "p")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kflow", "plan", "-C", str(project)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len({out for out, _ in outputs}) == 1
    (entry,) = cache_files(project)
    assert pickle.loads(entry.read_bytes()).declarations is not None
    assert py_plan(project) == outputs[0][0]


def test_import_kflow_in_a_definition_file_stays_light(tmp_path: Path) -> None:
    """`from kflow import task` (what every kflow.py does) imports no TOML reader, no
    validation or expansion code and no asyncio; a plan from the cache imports no
    validation or expansion code either."""
    probe = (
        "import sys, kflow\n"
        "heavy = {'asyncio', 'tomllib', 'kflow.load.build', 'kflow.load.tasks', "
        "'kflow.graph.expand', 'kflow.pyfunc', 'runpy'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    write_project(tmp_path / "p", TOML)
    plan(tmp_path / "p")  # writes the entry
    probe = (
        "import sys\n"
        "from kflow.cli.app import main\n"
        "sys.argv = ['kflow', 'plan', '-C', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('tomllib', 'kflow.load.build', 'kflow.graph.expand') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "p")],
        cwd=os.getcwd(),  # the current folder is part of the key: as the run that wrote it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr


# --- what the cache keeps besides the graph: fingerprints and record keys -----------------


def cached_graph(folder: Path) -> object:
    (entry,) = cache_files(folder)
    return pickle.loads(pickle.loads(entry.read_bytes()).payload)


def test_a_cached_graph_keeps_the_fingerprints_and_record_keys_a_plan_computes(
    tmp_path: Path,
) -> None:
    from kflow.graph import Graph
    from kflow.state import fingerprint, fingerprint_parts, instance_key

    write_project(tmp_path, TOML)
    plan(tmp_path)
    graph = cached_graph(tmp_path)
    assert isinstance(graph, Graph)
    fingerprints, keys = graph.derived["hashes"]
    (instance,) = graph.instances.values()
    assert fingerprints == {instance.id: fingerprint(fingerprint_parts(instance))}
    assert keys == {instance.id: instance_key(instance.id)}
    assert graph.derived["locations"] == ["data/eu.txt"]


def test_an_edited_output_or_input_location_is_stat_again(tmp_path: Path) -> None:
    write_project(tmp_path, TOML)
    assert kflow("build", "-C", str(tmp_path)).exit_code == 0
    assert "up to date" in plan(tmp_path)
    edited = TOML.replace("{region}.txt", "{region}-2.txt")
    (tmp_path / "kflow.toml").write_text(edited)
    assert "output missing: data/eu-2.txt" in plan(tmp_path)
    assert kflow("build", "-C", str(tmp_path)).exit_code == 0
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "kflow.toml").write_text(
        edited.replace("outputs =", 'inputs = ["in.txt"]\noutputs =')
    )
    assert "1 of 1 instance would run" in plan(tmp_path)
    (tmp_path / "in.txt").unlink()
    result = kflow("plan", "-C", str(tmp_path))
    assert result.exit_code == 2 and "in.txt" in result.output


ENVIRONED = TOML.replace(
    'outputs = ["{root}/{region}.txt"]',
    'outputs = ["{root}/{region}.txt"]\nenv = { COLOUR = "red" }',
)


@pytest.mark.parametrize(
    "edit",
    [
        ('COLOUR = "red"', 'COLOUR = "blue"'),  # a literal variable
        ('COLOUR = "red"', 'COLOUR = "red", SHADE = { secret = "s", key = "k" }'),  # a reference
        ('region = "eu"', 'region = "eu"\nextra = "x"'),  # a param no template names: same
        ('command = ["sh"', 'image = "alpine:3"\ncommand = ["sh"'),  # the image
    ],
)
def test_each_part_of_a_kept_fingerprint_follows_its_edit(
    tmp_path: Path, edit: tuple[str, str]
) -> None:
    write_project(tmp_path, ENVIRONED)
    assert kflow("build", "-C", str(tmp_path)).exit_code == 0, "built"
    assert "up to date" in plan(tmp_path)
    (tmp_path / "kflow.toml").write_text(ENVIRONED.replace(*edit))
    decided = json.loads(plan(tmp_path, "--json"))["instances"][0]
    same = edit[0].startswith("region")
    assert decided["reason"] == (None if same else "fingerprint changed"), decided
    if not same:  # built again, the kept fingerprint is the new one
        assert kflow("build", "-C", str(tmp_path)).exit_code == 0
        assert "up to date" in plan(tmp_path)


def test_an_edited_variable_in_kflow_py_changes_the_kept_fingerprint(tmp_path: Path) -> None:
    source = PY.replace(
        'outputs=[f"{{root}}/{name}.txt"]', 'outputs=[f"{{root}}/{name}.txt"], env={"C": "1"}'
    )
    project = py_project(tmp_path / "p", source)
    done = run(project, "build")
    assert done.returncode == 0, done.stderr
    assert "up to date" in py_plan(project)
    (project / "kflow.py").write_text(textwrap.dedent(source).replace('"C": "1"', '"C": "2"'))
    assert "2 of 2 instances would run" in py_plan(project)
    assert "fingerprint changed" in py_plan(project, "--why", "load_a")


def test_a_plan_with_dash_c_and_dash_f_imports_no_pydantic(tmp_path: Path) -> None:
    """typer coerces options through pydantic (about 0.2 s to import and build): `-C DIR`
    and `-f FILE` are plain paths, made without it, as every other plain option is."""
    project = write_project(tmp_path / "p", TOML)
    probe = (
        "import sys\n"
        "from kflow.cli.app import main\n"
        "sys.argv = ['kflow', 'plan', '-C', sys.argv[1], '-f', sys.argv[2]]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    print('exit', exit.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(project), str(project / "kflow.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "make[region=eu]" in done.stdout, done.stdout + done.stderr
    assert done.stdout.strip().endswith("exit 0\n[]"), done.stdout + done.stderr
