"""State records: what each instance looked like at the end of its last successful run.

Layout, in one flat folder ``{root}/.kflow/records/``, one object per record::

    KEY~FINGERPRINT~DIGEST~TIME.json

``KEY`` hashes the instance id, ``FINGERPRINT`` hashes what runs (argv, image,
env, params, GPU resources), ``DIGEST`` hashes the input stamps seen when the
record was made. A listing of the task's folder therefore tells the planner,
for every instance at once, whether anything changed: a no-op plan costs one
listing in all (one paged listing on S3), not one per task nor one read per instance.
Records of tasks no longer defined are names in that listing, nothing more. The JSON
body, read only when the name says something changed, holds the details that explain why.

Records are independent objects written atomically, so concurrent runs never
corrupt each other; ``TIME`` orders them when two exist for one instance.
A record whose fingerprint is ``incomplete`` marks an attempt in progress: if
kflow dies mid-attempt, the next plan reruns the instance instead of trusting a
half-written output.

Before 0.x, records lived in one folder per task (``{root}/.kflow/state/TASK/``, same
names). They are still read (one listing of ``state/``, then one per task folder left),
and ``kflow build`` moves them into the flat folder, so an upgrade keeps its state.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kflow.model import Instance, InstanceId, TaskSpec
from kflow.storage import Stamp, Storage

INCOMPLETE = "incomplete"
_HASH_LEN = 16


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def instance_key(iid: InstanceId) -> str:
    """The short hash naming an instance's records (ids can be long and hold any character)."""
    return _short_hash(iid)


def fingerprint_parts(instance: Instance) -> dict[str, Any]:
    """What runs, as comparable values: the parts a changed fingerprint is explained by.

    Secrets and ConfigMaps enter by reference (name and key), never by value.
    CPU and memory are left out on purpose: they change how fast, not what.
    """
    return _parts(instance, _task_parts(instance.task))


# The parts every instance of a task shares: (image, env references, env_from, resources).
_TaskParts = tuple[str | None, dict[str, Any], list[str], dict[str, Any]]


def _task_parts(task: TaskSpec) -> _TaskParts:
    env_refs = {
        var.name: {"secret": list(var.secret)}
        if var.secret
        else {"config_map": list(var.config_map or ())}
        for var in task.env
        if var.value is None
    }
    resources = (
        {"gpu": task.resources.gpu, "gpu_resource": task.resources.gpu_resource}
        if task.resources.gpu
        else {}
    )
    return task.image, env_refs, sorted(task.env_from), resources


def _parts(instance: Instance, shared: _TaskParts) -> dict[str, Any]:
    image, env_refs, env_from, resources = shared
    env = dict(sorted(instance.env.items())) if instance.env else {}
    return {
        "command": list(instance.argv),
        "image": image,
        "env": {**env, **env_refs} if env_refs else env,
        "env_from": env_from,
        "params": dict(instance.id.params),
        "resources": resources,
    }


def fingerprint(parts: Mapping[str, Any]) -> str:
    """The hash of what runs, from parts as ``fingerprint_parts`` makes them."""
    head = _head(parts["image"], parts["env_from"], parts["resources"])
    env = tuple(parts["env"].items())
    return _what_runs(head, tuple(parts["command"]), env, tuple(parts["params"].items()))


# Writing a record (``fingerprint``) and checking one (``fingerprints``) must hash the same
# text, or every plan would say "fingerprint changed": both end in these two functions.
def _head(image: str | None, env_from: list[str], resources: dict[str, Any]) -> str:
    return repr((image, env_from, resources))


def _what_runs(
    head: str,
    argv: tuple[str, ...],
    env: tuple[tuple[str, Any], ...],
    params: tuple[tuple[str, str], ...],
) -> str:
    return _short_hash(head + repr((argv, env, params)))


def fingerprints(instances: Iterable[Instance]) -> dict[InstanceId, str]:
    """``fingerprint(fingerprint_parts(i))`` of many instances, without making their parts.

    The text hashed is ``repr`` of plain values (canonical, and much cheaper than JSON): the
    task-wide parts once per task, then each instance's argv, env and parameters, which are
    tuples already.
    """
    heads: dict[str, tuple[str, dict[str, Any]]] = {}
    out: dict[InstanceId, str] = {}
    for instance in instances:
        task = instance.task
        known = heads.get(task.name)
        if known is None:
            image, env_refs, env_from, resources = _task_parts(task)
            known = heads[task.name] = (_head(image, env_from, resources), env_refs)
        head, env_refs = known
        env: tuple[tuple[str, Any], ...] = ()
        if instance.env or env_refs:
            env = tuple({**dict(sorted(instance.env.items())), **env_refs}.items())
        out[instance.id] = _what_runs(head, instance.argv, env, instance.id.params)
    return out


def stamp_token(stamp: Stamp | None) -> str:
    """The part of a stamp that moves when content may have: the etag if any, else the mtime."""
    if stamp is None:
        return "-"
    if stamp.etag:
        return f"{stamp.size}:{stamp.etag}"
    return f"{stamp.size}:{stamp.mtime!r}"


def inputs_digest(inputs: Iterable[str], stamps: Mapping[str, Stamp | None]) -> str:
    """The hash of the inputs' locations and stamps, in order (what a record vouches for)."""
    return _short_hash("\n".join(_input_line(loc, stamps) for loc in inputs))


def _input_line(location: str, stamps: Mapping[str, Stamp | None]) -> str:
    return f"{location}|{stamp_token(stamps.get(location))}"


def inputs_digests(
    instances: Iterable[Instance], stamps: Mapping[str, Stamp | None]
) -> dict[InstanceId, str]:
    """``inputs_digest`` of many instances; each location's line is made once, however many
    instances read it."""
    lines: dict[str, str] = {}
    out: dict[InstanceId, str] = {}
    sha256 = hashlib.sha256
    for instance in instances:
        parts = []
        for loc in instance.inputs:
            line = lines.get(loc)
            if line is None:
                line = lines[loc] = _input_line(loc, stamps)
            parts.append(line)
        # _short_hash, inlined: this runs once per instance, by the ten thousand
        out[instance.id] = sha256("\n".join(parts).encode()).hexdigest()[:_HASH_LEN]
    return out


def stamp_json(stamp: Stamp | None, content_hash: str | None = None) -> dict[str, Any] | None:
    if stamp is None:
        return None
    return {"size": stamp.size, "mtime": stamp.mtime, "etag": stamp.etag, "hash": content_hash}


class InputStamps(NamedTuple):
    """An instance's input stamps at one moment, with content hashes of local files."""

    stamps: Mapping[str, Stamp | None]
    hashes: Mapping[str, str | None]


class RecordRef(NamedTuple):
    """What a record's name says, without reading it."""

    location: str
    fingerprint: str
    digest: str
    time_ns: int

    @property
    def incomplete(self) -> bool:
        return self.fingerprint == INCOMPLETE


def _record_name_parts(name: str) -> tuple[str, str, str, str]:
    """``KEY~FP~DIGEST~TIME.json`` → its four parts; TIME is "" when the name is not a record."""
    parts = name[:-5].split("~") if name.endswith(".json") else []
    if len(parts) != 4 or not parts[3].isdigit():
        return "", "", "", ""
    return parts[0], parts[1], parts[2], parts[3]


def _run_of(data: bytes) -> str:
    """The run an incomplete mark names ("" if unreadable)."""
    try:
        body = json.loads(data)
    except ValueError:
        return ""
    run = body.get("run") if isinstance(body, dict) else None
    return run if isinstance(run, str) else ""


class StateStore:
    """Reads and writes the records of one project's storage root."""

    def __init__(self, storage: Storage, root: str):
        self.storage = storage
        self.folder = f"{root.rstrip('/')}/.kflow/records"
        self.legacy = f"{root.rstrip('/')}/.kflow/state"  # the per-task layout of old
        self._legacy: dict[str, str] = {}  # old-layout records seen: location → flat location
        # Tasks whose old-layout folder the first listing found: an old kflow still building
        # writes its records there, even after ``upgrade`` moved what was in them.
        self._legacy_tasks: set[str] | None = None  # None: state/ not listed yet
        self._upgraded = False
        # Record locations seen by instance key: what a new record replaces. Made from the
        # listings only when a write needs it (planning alone never does).
        self._listed: list[tuple[str, list[str]]] = []  # (folder, names) not yet in _seen
        self._by_key: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # record_many writes from a thread pool

    def index(self, tasks: Iterable[str]) -> dict[str, RecordRef]:
        """The newest record of each instance of these tasks, by instance key.

        One listing of the flat folder; old-layout folders of these tasks, if any are left,
        one listing each. The old layout is listed first: a concurrent ``upgrade`` moves a
        record before it deletes it, so either listing sees it.
        """
        listings = self._legacy_listings(set(tasks))
        listings.append((self.folder, self.storage.list_names(self.folder)))
        return self._newest(listings)

    def index_of(self, instances: Sequence[Instance]) -> dict[str, RecordRef]:
        """``index`` of a few instances (one decided again before it starts): on S3, a
        listing of their keys' records only, not of every record."""
        listings = self._legacy_listings({i.id.task for i in instances})
        keys = [f"{instance_key(i.id)}~" for i in instances]
        found = self.storage.list_names_prefixed(self.folder, keys)
        listings.append((self.folder, [name for names in found.values() for name in names]))
        return self._newest(listings)

    def _newest(self, listings: list[tuple[str, list[str]]]) -> dict[str, RecordRef]:
        newest: dict[str, RecordRef] = {}
        for folder, names in listings:
            self._listed.append((folder, names))
            for name in names:
                # _record_name_parts, inlined: a listing holds a name per instance
                parts = name[:-5].split("~") if name.endswith(".json") else ()
                if len(parts) != 4 or not parts[3].isdigit():
                    continue  # a temp file or something not ours
                key, fp, digest, stamp = parts
                time_ns = int(stamp)
                known = newest.get(key)
                if known is None or time_ns >= known.time_ns:  # equal: the flat copy
                    newest[key] = RecordRef(f"{folder}/{name}", fp, digest, time_ns)
        return newest

    def _legacy_listings(self, tasks: set[str]) -> list[tuple[str, list[str]]]:
        """The old-layout folders of these tasks, listed (``state/`` itself only once).

        After ``upgrade`` they are still listed where the first listing found one: during an
        upgrade, an old kflow may still be building and write its success records there, and
        a recheck that missed them would run its instances again (newest record wins).
        """
        if self._legacy_tasks is None:
            self._legacy_tasks = set(self.storage.list_names(self.legacy))
        present = sorted(self._legacy_tasks & tasks)
        if not present:
            return []
        folders = [f"{self.legacy}/{task}" for task in present]
        listings = list(self.storage.list_names_many(folders).items())
        if not self._upgraded:
            for folder, names in listings:
                for name in names:
                    if _record_name_parts(name)[3]:
                        self._legacy[f"{folder}/{name}"] = f"{self.folder}/{name}"
        return listings

    def upgrade(self, alive: Callable[[str], bool] | None = None) -> None:
        """Move the old-layout records ``index`` found into the flat folder (``kflow build``
        does, before it writes: planning stays read-only). A rename locally; concurrent runs
        may both move, the second finds nothing left.

        An incomplete mark of a run that ``alive`` says still goes on stays where it is:
        that (old) kflow replaces it there with its success record, or leaves it to say
        that its attempt did not finish.
        """
        moves, self._legacy = self._legacy, {}
        self._upgraded = True
        marks = [old for old in moves if _record_name_parts(old.rsplit("/", 1)[1])[1] == INCOMPLETE]
        if alive is not None and marks:
            for location, data in self.storage.read_many(marks).items():
                if data is not None and alive(_run_of(data)):
                    del moves[location]
        if not moves:
            return
        self.storage.move_many(moves)
        seen = self._seen
        with self._lock:
            for locations in seen.values():
                for old in [loc for loc in locations if loc in moves]:
                    locations.discard(old)
                    locations.add(moves[old])

    @property
    def _seen(self) -> dict[str, set[str]]:
        """Instance key → record locations known to exist (from listings and own writes)."""
        with self._lock:
            while self._listed:
                folder, names = self._listed.pop()
                for name in names:
                    key, _, _, stamp = _record_name_parts(name)
                    if stamp:
                        self._by_key.setdefault(key, set()).add(f"{folder}/{name}")
        return self._by_key

    def read(self, refs: Iterable[RecordRef]) -> dict[str, dict[str, Any]]:
        """Record bodies by location, read concurrently where remote; unreadable ones skipped."""
        bodies: dict[str, dict[str, Any]] = {}
        for location, data in self.storage.read_many([r.location for r in refs]).items():
            if data is None:
                continue
            try:
                bodies[location] = json.loads(data)
            except ValueError:
                continue  # records are written atomically; this is not one of ours
        return bodies

    def _write(
        self, iid: InstanceId, fp: str, digest: str, body: Mapping[str, Any], durable: bool
    ) -> str:
        location = f"{self.folder}/{instance_key(iid)}~{fp}~{digest}~{time.time_ns()}.json"
        # Compact: with any indent, json falls back to its pure-Python encoder.
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        self.storage.write_atomic(location, data, durable)
        return location

    def _replace(self, iid: InstanceId, fp: str, digest: str, body: Mapping[str, Any]) -> None:
        """Write a new record and delete the ones this store knows to be older.

        Older records come from this store's own listings and writes, never from a
        fresh listing per write (that would cost a listing per instance). One a
        concurrent run wrote stays behind, harmless: the newest record wins.
        """
        key = instance_key(iid)
        older = self._seen.get(key, set())
        # Not durable: should a power loss undo it, the incomplete mark (durable) or no
        # record at all is what remains, and the instance runs again; nothing is trusted.
        location = self._write(iid, fp, digest, body, durable=False)
        self.storage.delete_many(sorted(older))
        self._seen[key] = {location}

    def mark_incomplete(self, instance: Instance, run_id: str) -> str:
        """Before an attempt: outputs that exist after a crash must not count as done.
        Older records stay (the newest wins): ``unmark`` makes the previous one count again.
        Returns the mark's location."""
        key = instance_key(instance.id)
        # Its outputs too: an instance of another id that makes the same files (a parameter
        # value changed, the task renamed) must not adopt what this attempt half wrote.
        outputs = sorted(instance.outputs.values())
        body = {"instance": str(instance.id), "run": run_id, "outputs": outputs}
        location = self._write(instance.id, INCOMPLETE, "-", body, True)
        self._seen.setdefault(key, set()).add(location)
        return location

    def unmark(self, instance: Instance, location: str) -> None:
        """Delete an incomplete mark whose attempt never started."""
        self.storage.delete_many([location])
        self._seen.get(instance_key(instance.id), set()).discard(location)

    def input_stamps(self, instance: Instance) -> InputStamps:
        """The instance's input stamps now (with content hashes of local files): taken as
        an attempt starts, they are what its record keeps (SPEC §2), so that an input
        edited while the attempt runs leaves the instance stale."""
        locations = list(instance.inputs)
        stamps = self.storage.stat_many(locations)
        local = [loc for loc in locations if (s := stamps.get(loc)) and not s.etag and not s.is_dir]
        if not local:
            return InputStamps(stamps, {})
        hashes = self.storage.content_hashes(local)
        # A file changed while it was hashed: its hash vouches for neither version.
        again = self.storage.stat_many(local)
        return InputStamps(stamps, {k: v for k, v in hashes.items() if again.get(k) == stamps[k]})

    def record_success(
        self, instance: Instance, run_id: str, inputs: InputStamps | None = None
    ) -> None:
        """After success: the fingerprint, the input stamps taken as the attempt started
        (``inputs``; else now) and the output stamps now."""
        self.record_many([instance], run_id, started={instance.id: inputs} if inputs else None)

    def record_many(
        self,
        instances: Sequence[Instance],
        run_id: str,
        stamps: Mapping[str, Stamp | None] | None = None,
        started: Mapping[InstanceId, InputStamps] | None = None,
    ) -> None:
        """Record several instances with one batched stat (``kflow accept``, a run's end).

        ``stamps`` may carry a stat the caller just made of every input and output;
        ``started`` the input stamps of instances whose attempt took them as it started.
        """
        started = started or {}
        locations = sorted(
            {
                loc
                for i in instances
                for loc in (*(() if i.id in started else i.inputs), *i.outputs.values())
            }
        )
        if stamps is None:
            stamps = self.storage.stat_many(locations)
        # Only inputs are hashed: a record's input hashes are what the planner compares
        # (size equal, mtime moved); its output stamps are never compared by content, so
        # reading back every output (a full read of a multi-GB file per task) buys nothing.
        wanted = {loc for i in instances if i.id not in started for loc in i.inputs}
        local = [
            loc
            for loc in locations
            if loc in wanted and (s := stamps.get(loc)) and not s.etag and not s.is_dir
        ]
        hashes = self.storage.content_hashes(local) if local else {}
        now = InputStamps(stamps, hashes)

        def record(instance: Instance) -> None:
            parts = fingerprint_parts(instance)
            inputs = started.get(instance.id, now)
            body = {
                "instance": str(instance.id),
                "run": run_id,
                "time": time.time(),
                "fingerprint": parts,
                "inputs": {
                    loc: stamp_json(inputs.stamps.get(loc), inputs.hashes.get(loc))
                    for loc in instance.inputs
                },
                "outputs": {
                    loc: stamp_json(stamps.get(loc), hashes.get(loc))
                    for loc in instance.outputs.values()
                },
            }
            digest = inputs_digest(instance.inputs, inputs.stamps)
            self._replace(instance.id, fingerprint(parts), digest, body)

        if len(instances) == 1:  # an attempt's success: no pool (a thread) for one write
            record(instances[0])
            return

        from concurrent.futures import ThreadPoolExecutor  # here: planning never needs it

        # Writes are independent objects: on remote storage, many at once.
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(instances)))) as pool:
            list(pool.map(record, instances))

    def forget(self, instances: Iterable[Instance]) -> None:
        """Delete every record of these instances (``kflow clean``)."""
        wanted = list(instances)
        self.index(i.id.task for i in wanted)
        doomed = [loc for i in wanted for loc in self._seen.pop(instance_key(i.id), set())]
        self.storage.delete_many(sorted(doomed))


class StateRecorder:
    """The runner's hooks: before an attempt, take its input stamps and mark it incomplete;
    after success, record it with those stamps."""

    def __init__(self, store: StateStore, run_id: str):
        self.store = store
        self.run_id = run_id
        self._started: dict[InstanceId, InputStamps] = {}  # written from several threads
        self._marks: dict[InstanceId, str] = {}  # the incomplete mark of each attempt

    def before_attempt(self, instance: Instance) -> None:
        self._started[instance.id] = self.store.input_stamps(instance)
        self._marks[instance.id] = self.store.mark_incomplete(instance, self.run_id)

    def not_started(self, instance: Instance) -> None:
        self._started.pop(instance.id, None)
        mark = self._marks.pop(instance.id, None)
        if mark is not None:
            self.store.unmark(instance, mark)

    def after_success(self, instance: Instance) -> None:
        self._marks.pop(instance.id, None)
        inputs = self._started.pop(instance.id, None)
        self.store.record_success(instance, self.run_id, inputs)
