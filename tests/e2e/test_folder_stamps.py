"""Folders and globs are stamped by what is in them (SPEC §2), through the CLI.

Adding, changing or deleting a file inside a source-input folder, a glob's matches or
an output folder reruns what depends on it; an emptied folder output is missing —
on local disk and on S3 alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import data_project, kflow, would_run, write_project
from tests.storage.s3server import S3Server

# `make` copies every file of lib into an output folder; `use` lists that folder.
LOCAL = """
[project]
storage = "file://./data"
default = ["use"]

[tasks.make]
inputs = ["{source}"]
command = ["python", "-c", '''
import os, shutil, sys
os.makedirs(sys.argv[1], exist_ok=True)
for name in sorted(os.listdir("lib")):
    shutil.copy(os.path.join("lib", name), sys.argv[1])
''', "{{output}}"]
outputs = ["{{root}}/made"]

[tasks.use]
requires = ["make"]
command = ["python", "-c", '''
import os, sys
open(sys.argv[2], 'w').write(str(sorted(os.listdir(sys.argv[1]))))
''', "{{input}}", "{{output}}"]
outputs = ["{{root}}/used.txt"]
"""


def build(project: Path) -> None:
    result = kflow("build", "-C", project)
    assert result.exit_code == 0, result.output
    assert would_run(project) == {}


def local_project(folder: Path, source: str) -> Path:
    return write_project(
        folder,
        LOCAL.format(source=source),
        **{"lib__a.py": "A = 1\n", "lib__notes.txt": "notes\n"},
    )


def test_a_source_folder_change_inside_reruns_its_task(tmp_path: Path) -> None:
    project = local_project(tmp_path / "p", "lib")
    build(project)
    lib = project / "lib"
    (lib / "b.py").write_text("B = 2\n")  # added
    assert would_run(project) == {"make": "fingerprint changed", "use": "upstream will run"}
    build(project)
    (lib / "a.py").write_text("A = 10\n")  # changed
    assert "make" in would_run(project)
    build(project)
    (lib / "b.py").unlink()  # deleted
    assert "make" in would_run(project)
    build(project)
    (lib / "__pycache__").mkdir()  # what running Python leaves behind is not content
    (lib / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    assert would_run(project) == {}


def test_an_output_folder_changed_by_hand_reruns_its_consumers(tmp_path: Path) -> None:
    project = local_project(tmp_path / "p", "lib")
    build(project)
    made = project / "data" / "made"
    (made / "extra.txt").write_text("added by hand\n")
    assert would_run(project) == {"use": "input changed"}
    build(project)
    assert "extra.txt" in (project / "data" / "used.txt").read_text()
    for child in made.iterdir():
        child.unlink()  # the folder is still there, but empty
    assert would_run(project)["make"] == "output missing"
    build(project)
    assert sorted(p.name for p in made.iterdir()) == ["a.py", "notes.txt"]


def test_a_glob_input_is_stamped_as_the_files_it_matches(tmp_path: Path) -> None:
    project = local_project(tmp_path / "p", "lib/*.py")
    assert kflow("check", "-C", project).exit_code == 0
    build(project)
    (project / "lib" / "notes.txt").write_text("not matched\n")
    assert would_run(project) == {}
    (project / "lib" / "b.py").write_text("B = 2\n")
    assert would_run(project)["make"] == "fingerprint changed"
    build(project)
    shutil.rmtree(project / "lib")
    (project / "lib").mkdir()
    result = kflow("plan", "-C", project)
    assert result.exit_code == 2 and "lib/*.py" in result.stderr  # matches nothing: missing


S3_PROJECT = """
[project]
storage = "s3://{bucket}/r"
storage_options = {{ endpoint_url = "{endpoint}" }}
default = ["use"]

[tasks.make]
command = ["true"]
outputs = ["{{root}}/made"]

[tasks.use]
requires = ["make"]
command = ["true"]
outputs = ["{{root}}/used.txt"]
"""


def test_s3_prefix_output_is_stamped_by_its_keys(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    project = write_project(
        tmp_path / "p", S3_PROJECT.format(bucket=s3_bucket, endpoint=s3_server.endpoint_url)
    )
    s3_server.put_objects(s3_bucket, {"r/made/a.txt": b"a", "r/made/sub/b.txt": b"b"})
    s3_server.put_objects(s3_bucket, {"r/used.txt": b"used"})
    assert kflow("accept", "-C", project, "use").exit_code == 0
    assert would_run(project) == {}
    s3_server.put_objects(s3_bucket, {"r/made/sub/b.txt": b"b"})  # the same bytes again
    assert would_run(project) == {}
    s3_server.put_objects(s3_bucket, {"r/made/c.txt": b"c"})  # a key added
    assert would_run(project) == {"use": "input changed"}
    assert kflow("accept", "-C", project, "use").exit_code == 0
    s3_server.put_objects(s3_bucket, {"r/made/a.txt": b"A"})  # a key changed
    assert would_run(project) == {"use": "input changed"}
    assert kflow("accept", "-C", project, "use").exit_code == 0
    client = s3_server.client()
    client.delete_object(Bucket=s3_bucket, Key="r/made/c.txt")  # a key deleted
    assert would_run(project) == {"use": "input changed"}
    for key in ("r/made/a.txt", "r/made/sub/b.txt"):
        client.delete_object(Bucket=s3_bucket, Key=key)
    client.put_object(Bucket=s3_bucket, Key="r/made/", Body=b"")  # an empty "folder"
    assert would_run(project)["make"] == "output missing"


def test_a_task_that_leaves_its_output_folder_empty_fails(tmp_path: Path) -> None:
    project = data_project(
        tmp_path / "p",
        """
        [tasks.t]
        command = ["mkdir", "-p", "{output}"]
        outputs = ["{root}/out"]
        """,
    )
    result = kflow("build", "-C", project)
    assert result.exit_code == 1 and "did not write data/out" in result.output
