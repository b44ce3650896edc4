"""`kflow check` validates every profile and, for Kubernetes profiles, every task's pod; the
local executor applies `resources` (CPUs against -j, the memory limit) as a pod would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

PROJECT = """
[project]
name = "chk"
storage = "file://./data"

[defaults]
image = "python:3.12-slim"

[tasks.extract]
command = ["python", "-c", "open('{output}', 'w').write('x')"]
outputs = ["{root}/raw.txt"]
tolerations = [{ key = "gpu", operator = "Exists", effect = "NoSchedule" }]
volumes = [{ name = "scratch", mount_path = "/scratch", empty_dir = true }]

[profiles.dev]
jobs = 2

[profiles.k]
executor = "kubernetes"
namespace = "kflow"
jobs = 4
"""


def _check(tmp_path: Path, text: str) -> tuple[int, str, str, set[str]]:
    project = write_project(tmp_path / "p", text)
    before = files_under(project)
    result = kflow("check", "-C", project)
    assert "Traceback" not in result.output
    assert files_under(project) == before  # check writes nothing
    return result.exit_code, result.stdout, result.stderr, before


def test_check_passes_and_says_each_kubernetes_pod_is_valid(tmp_path: Path) -> None:
    code, out, err, _ = _check(tmp_path, PROJECT)
    assert code == 0, err
    assert out.startswith("ok: chk: 1 task, 1 instance")
    assert "profile 'k' (kubernetes): 1 pod manifest valid" in out


def test_a_profile_that_is_not_selected_is_checked_too(tmp_path: Path) -> None:
    code, out, err, _ = _check(tmp_path, PROJECT.replace("jobs = 2", "jobs = 0"))
    assert code == 2, out
    assert "kflow.toml:" in err and "profiles.dev.jobs" in err and "at least 1" in err
    assert not out.startswith("ok")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('image = "python:3.12-slim"', ""), ["task 'extract' has no image"]),
        ((", empty_dir = true", ""), ["volumes[0] (scratch): give exactly one of"]),
        (("mount_path", "mount_pth"), ["volumes[0]: unknown key 'mount_pth'", "mount_path"]),
        (('operator = "Exists"', 'operator = "Exist"'), ["tolerations[0]: unknown operator"]),
        (('effect = "NoSchedule"', 'effect = "NoScedule"'), ["unknown effect 'NoScedule'"]),
        (
            ("volumes =", 'pod_overrides = { spec = { nodeSelectr = { a = "b" } } }\nvolumes ='),
            ["unknown key 'spec.nodeSelectr'", "did you mean 'nodeSelector'"],
        ),
        (
            (
                "volumes =",
                'pod_overrides = { spec = { activeDeadlineSeconds = "soon" } }\nvolumes =',
            ),
            ["spec.activeDeadlineSeconds", "is not of type 'integer'"],
        ),
    ],
)
def test_kubernetes_pod_problems_fail_check_naming_profile_task_and_key(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    code, out, err, _ = _check(tmp_path, PROJECT.replace(*change))
    assert code == 2, out + err
    assert "tasks.extract" in err and "profile 'k'" in err
    for text in expected:
        assert text in err


def test_check_says_what_has_no_effect_locally(tmp_path: Path) -> None:
    code, out, err, _ = _check(
        tmp_path,
        PROJECT.replace("tolerations =", 'resources = { cpu = "1", gpu = 1 }\ntolerations ='),
    )
    assert code == 0, err
    assert (
        "profile 'dev' (local): note: resources.gpu has no effect on the local executor "
        "(tasks: extract)"
    ) in out


# Each task marks itself running and watches for the other for up to WINDOW seconds;
# whoever sees the other leaves "overlap" behind, so both stop looking at once.
PROBE = """
import pathlib, sys, time
me, other, window, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
pathlib.Path(f"running-{me}").touch()
deadline = time.monotonic() + window
while time.monotonic() < deadline:
    if pathlib.Path(f"running-{other}").exists() or pathlib.Path("overlap").exists():
        pathlib.Path("overlap").touch()
        break
    time.sleep(0.01)
pathlib.Path(f"running-{me}").unlink()
pathlib.Path(out).write_text("done")
"""

CPU_PROJECT = """
[tasks.a]
command = ["python", "probe.py", "a", "b", "WINDOW", "{output}"]
outputs = ["a.txt"]
resources = { cpu = "CPUS" }
[tasks.b]
command = ["python", "probe.py", "b", "a", "WINDOW", "{output}"]
outputs = ["b.txt"]
resources = { cpu = "CPUS" }
"""


@pytest.mark.parametrize(("cpus", "window", "overlap"), [("2", "2", False), ("1", "60", True)])
def test_local_cpus_count_against_the_jobs_budget(
    tmp_path: Path, cpus: str, window: str, overlap: bool
) -> None:
    text = CPU_PROJECT.replace("CPUS", cpus).replace("WINDOW", window)
    project = write_project(tmp_path / "p", text, **{"probe.py": PROBE})
    result = kflow("build", "-C", project, "-j", "2", "a", "b")
    assert result.exit_code == 0, result.output
    # -j 2 is two CPUs: two tasks of cpu=2 run one at a time, two of cpu=1 side by side
    assert (project / "overlap").exists() is overlap


def test_local_task_over_its_memory_limit_fails_like_an_oom_kill(tmp_path: Path) -> None:
    allocate = "x = bytearray({} * 1024 * 1024); open('{{output}}', 'w').write('x')"
    project = write_project(
        tmp_path / "p",
        f"""
        [defaults]
        resources = {{ memory = "64Mi" }}
        [tasks.hog]
        command = ["python", "-c", "{allocate.format(512)}"]
        outputs = ["hog.txt"]
        [tasks.small]
        command = ["python", "-c", "{allocate.format(8)}"]
        outputs = ["small.txt"]
        """,
    )
    result = kflow("build", "-C", project, "-k", "hog", "small")
    assert result.exit_code == 1, result.output
    assert "failed hog: out of memory: over its memory limit 64Mi" in result.stdout
    assert (project / "small.txt").exists() and not (project / "hog.txt").exists()
