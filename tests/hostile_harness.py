"""Run flightcheck scans of hostile targets in a child process that is bounded, watched and
audited, and judge what came out. Shared by tests/test_fuzz.py and tests/test_no_host_reads.py.

Why a child process: a hostile input may exhaust memory, hang, or kill the interpreter;
the test process must survive to say which input did it. The child runs under
``RLIMIT_AS`` (2 GiB, inherited by the census workers it forks) and a per-case wall
clock the parent enforces by killing its process group.

Why many scans per child: starting Python and importing the scanner costs more than
scanning a small mutant. The child imports the CLI once and runs ``flightcheck scan ...``
in-process for each case, exactly as the console script does (``scanner.cli.main`` in
click's standalone mode: its own exit codes, its own error lines), with file descriptors
1 and 2 pointed at per-case files so what forked workers and C libraries print is kept
too. Each case's start and end are appended to a report file before and after it runs: a
case that hangs or kills the child is named, and the remaining cases are run in a new child.

Why an audit hook (``sys.addaudithook``, optional): every file the child's Python code
opens is recorded (with its flags), with every folder listed, every file changed
(rename, remove, chmod, utime...), every sqlite database connected to and every program
started. Python 3.11 raises ``open`` for ``builtins.open``/``io.open`` *and* ``os.open``
(the flags tell reads from writes), ``os.listdir``/``os.scandir``, ``sqlite3.connect``,
``subprocess.Popen``/``os.exec``/``os.posix_spawn``/``os.system``, and the ``os.*``
mutators. The hook is inherited by forked census workers (same interpreter state after
``fork``); each line is one ``os.write`` to an ``O_APPEND`` file, so concurrent writers
do not interleave.

What the hook cannot see (see :func:`strace_opens` for that): files opened by C code
without going through Python (librpm and sqlite reading a database, libvirt, libguestfs,
the dynamic loader of the interpreter itself, locale and time-zone files of libc),
``mmap`` of an already open descriptor (it sees the descriptor, not the path), ``stat``
and ``readlink`` (not audited: they read metadata, never content), and a relative name
*opened* against a ``dir_fd`` (the ``open`` event carries only the name; the hook records
it against the current folder, a private empty folder outside every allowance, so it shows
as a foreign path rather than passing unnoticed). The ``os.remove``/``os.mkdir``/... events
do carry their ``dir_fd``: the hook places those names through ``/proc/self/fd``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: the flightcheck tree the child imports: this checkout, or another one (a ``git archive`` of
#: an older commit, to tell when a failure began) named by FLIGHTCHECK_HARNESS_TREE
TREE = Path(os.environ.get("FLIGHTCHECK_HARNESS_TREE") or REPO).resolve()
PYTHON = Path(sys.executable)
GiB = 1024 ** 3
#: the issue's bound for every hostile case
MEMORY_LIMIT = 2 * GiB
CASE_SECONDS = 60.0
TRACEBACK = "Traceback (most recent call last)"

# Events whose first argument is a path the child touched, and whether they change it.
READ_EVENTS = {"open", "os.listdir", "os.scandir", "sqlite3.connect", "glob.glob", "shutil.copyfile",
               "shutil.copytree"}
WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime",
                "os.truncate", "os.symlink", "os.link", "os.chflags", "os.setxattr", "os.removexattr",
                "shutil.rmtree", "shutil.move", "shutil.chown"}
EXEC_EVENTS = {"subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_CHILD = r'''
import json, os, sys, time, traceback, resource

spec = json.load(sys.stdin)
report_fd = os.open(spec["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

def note(**kw):
    os.write(report_fd, (json.dumps(kw) + "\n").encode())

if spec.get("audit"):
    audit_fd = os.open(spec["audit"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    READ, WRITE, EXEC = set(spec["read_events"]), set(spec["write_events"]), set(spec["exec_events"])
    _fspath, _getcwd, _join, _write, _dumps, _getpid = os.fspath, os.getcwd, os.path.join, os.write, json.dumps, os.getpid
    _readlink = os.readlink
    # where the dir_fd is among each event's arguments (Python 3.11's audit table)
    DIR_FD_ARG = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 2, "os.rename": 2, "os.chmod": 2, "os.chown": 3,
                  "os.utime": 3, "os.symlink": 2, "os.link": 2, "os.listdir": None, "os.scandir": None}
    busy = []

    def hook(event, args):
        if event not in READ and event not in WRITE and event not in EXEC:
            return
        if busy:
            return
        busy.append(1)
        try:
            first = args[0] if args else None
            extra = None
            if event == "open":
                extra = [args[1] if len(args) > 1 and isinstance(args[1], str) else None,
                         args[2] if len(args) > 2 and isinstance(args[2], int) else 0]
            if event in EXEC:
                first = repr(args)[:2000]
            elif isinstance(first, (str, bytes, os.PathLike)):
                first = _fspath(first)
                if isinstance(first, bytes):
                    first = first.decode("utf-8", "surrogateescape")
                if not first.startswith("/") and not first.startswith("file:"):
                    # relative to a dir_fd where the event carries it (os.remove, os.mkdir...),
                    # else to the working folder ('open' does not carry it)
                    pos = DIR_FD_ARG.get(event)
                    fd = args[pos] if pos is not None and len(args) > pos else None
                    base = None
                    if isinstance(fd, int) and fd >= 0:
                        try:
                            base = _readlink("/proc/self/fd/%d" % fd)
                        except OSError:
                            base = None
                    first = _join(base or _getcwd(), first)
            else:
                first = None if not isinstance(first, int) else "<fd %d>" % first
            _write(audit_fd, (_dumps([event, first, extra, _getpid()], ensure_ascii=True) + "\n").encode())
        except Exception:
            pass
        finally:
            busy.pop()

    sys.addaudithook(hook)

sys.argv = ["flightcheck"]
from scanner.cli import main  # noqa: E402

for case in spec["cases"]:
    out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(out, 1); os.dup2(err, 2); os.close(out); os.close(err)
    if spec.get("audit"):
        os.write(audit_fd, (json.dumps(["case", case["name"], None, os.getpid()]) + "\n").encode())
    note(event="start", name=case["name"], t=time.monotonic())
    t0 = time.monotonic()
    code, crash = None, None
    try:
        main.main(args=case["argv"], prog_name="flightcheck", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:
        crash = traceback.format_exc()
        sys.stderr.write(crash)
    sys.stdout.flush(); sys.stderr.flush()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ruc = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    note(event="end", name=case["name"], code=code, crash=crash, seconds=time.monotonic() - t0,
         maxrss_kib=ru, children_maxrss_kib=ruc)
os._exit(0)
'''


@dataclass(frozen=True)
class Case:
    """One scan: ``argv`` after ``flightcheck`` (``-o`` is added), a name for the report."""

    name: str
    argv: tuple[str, ...]
    #: paths of the target (a root folder, or image files); what "outside the target" means
    target: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What one scan did."""

    case: Case
    code: int | None  # the exit code; None when it never finished
    crash: str | None  # an exception that escaped the CLI, or why the child died
    stdout: str
    stderr: str
    seconds: float
    out_dir: Path
    doc: dict[str, Any] | None = None  # result.json when written and valid
    result_problem: str | None = None  # result.json written but not valid JSON
    maxrss_kib: int = 0

    @property
    def tracebacks(self) -> bool:
        return self.crash is not None or TRACEBACK in self.stderr or TRACEBACK in self.stdout

    def describe(self) -> str:
        tail = (self.crash or self.stderr or "")[-1500:]
        return (f"{self.case.name}: flightcheck {' '.join(self.case.argv)}\n  exit {self.code}, "
                f"{self.seconds:.1f} s\n  {tail.strip()}")


@dataclass
class Batch:
    outcomes: list[Outcome]
    audit_log: Path | None
    tmpdir: Path
    work: Path
    events: list[tuple[str, str | None, Any, int]] = field(default_factory=list)

    def events_of(self, name: str) -> list[tuple[str, str | None, Any, int]]:
        """The audit events raised while case ``name`` ran (its forked workers included)."""
        out, current = [], None
        for ev in self.events:
            if ev[0] == "case":
                current = ev[1]
            elif current == name:
                out.append(ev)
        return out


def _limit_memory(limit: int) -> None:
    """In the child before exec: its own process group (so a kill reaches its workers) and
    the address-space cap."""
    os.setpgrp()
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_cases(cases: Sequence[Case], work: Path, *, audit: bool = False, case_seconds: float = CASE_SECONDS,
              memory: int = MEMORY_LIMIT, extra_env: dict[str, str] | None = None) -> Batch:
    """Scan every case in as few children as possible (a new child after one that died);
    each case gets ``work/<name>/`` for its output. Never raises for a bad case."""
    work.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))  # the child's TMPDIR: nothing else uses it
    # empty, and outside every allowance (``work`` is one): a relative open shows as foreign
    cwd = Path(tempfile.mkdtemp(prefix="flightcheck-harness-cwd-"))
    audit_log = work / "audit.jsonl" if audit else None
    if audit_log is not None:
        audit_log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTCHECK_", "PYTEST_", "COV_"))}
    env.update({"TMPDIR": str(tmpdir), "PYTHONPATH": str(TREE), "NO_COLOR": "1", "COLUMNS": "120",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONFAULTHANDLER": "1"})
    env.update(extra_env or {})
    outcomes: dict[str, Outcome] = {}
    pending = list(cases)
    while pending:
        report = work / f"report-{len(outcomes)}.jsonl"
        report.unlink(missing_ok=True)
        specs = []
        for c in pending:
            d = work / c.name
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            specs.append({"name": c.name, "argv": [*c.argv, "-o", str(d / "out")],
                          "stdout": str(d / "stdout"), "stderr": str(d / "stderr")})
        spec = {"report": str(report), "cases": specs, "audit": str(audit_log) if audit_log else None,
                "read_events": sorted(READ_EVENTS), "write_events": sorted(WRITE_EVENTS),
                "exec_events": sorted(EXEC_EVENTS)}
        proc = subprocess.Popen([str(PYTHON), "-c", _CHILD], stdin=subprocess.PIPE, cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=(work / "child-stderr").open("ab"),
                                # no threads in this process run Python while it forks
                                preexec_fn=lambda: _limit_memory(memory))  # noqa: PLW1509
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        current: tuple[str, float] | None = None
        done_now: dict[str, dict[str, Any]] = {}
        first_seen: dict[str, float] = {}  # when the parent first saw each case start
        killed = None
        while True:
            finished = proc.poll() is not None
            current = None
            for line in _lines(report):
                rec = json.loads(line)
                if rec["event"] == "start":
                    current = (rec["name"], first_seen.setdefault(rec["name"], time.monotonic()))
                elif rec["event"] == "end":
                    done_now[rec["name"]] = rec
                    current = None
            if finished:
                break
            if current and time.monotonic() - current[1] > case_seconds:
                killed = f"killed after {case_seconds:.0f} s (hung or too slow)"
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.05)
        _reap(proc.pid)
        by_name = {c.name: c for c in pending}
        for name, rec in done_now.items():
            outcomes[name] = _outcome(by_name[name], work / name, rec["code"], rec["crash"], rec["seconds"],
                                      rec.get("maxrss_kib", 0))
        if current is not None:
            name = current[0]
            why = killed or f"the child died (exit status {proc.returncode}) while scanning this case"
            outcomes[name] = _outcome(by_name[name], work / name, None, why, time.monotonic() - current[1], 0)
        elif proc.returncode and not done_now:
            raise RuntimeError(f"the scan child failed before any case: {(work / 'child-stderr').read_text()}")
        pending = [c for c in pending if c.name not in outcomes]
    shutil.rmtree(cwd, ignore_errors=True)
    batch = Batch([outcomes[c.name] for c in cases], audit_log, tmpdir, work)
    if audit_log is not None and audit_log.exists():
        batch.events = [tuple(json.loads(line)) for line in _lines(audit_log)]  # type: ignore[misc]
    return batch


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [ln for ln in text.split("\n")[:-1] if ln]  # the last piece may be a line being written


def _reap(pgid: int) -> None:
    """Kill whatever the child left in its process group (a census worker of a killed
    scan): only our own group, by its id."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _outcome(case: Case, d: Path, code: int | None, crash: str | None, seconds: float, rss: int) -> Outcome:
    def text(name: str) -> str:
        try:
            return (d / name).read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    o = Outcome(case, code, crash, text("stdout"), text("stderr"), seconds, d / "out", maxrss_kib=rss)
    result = d / "out" / "result.json"
    if result.exists():
        raw = result.read_bytes()
        try:
            o.doc = json.loads(raw.decode("utf-8"))  # strict: valid UTF-8, valid JSON
        except (UnicodeDecodeError, ValueError) as exc:
            o.result_problem = f"result.json is not valid UTF-8 JSON: {exc}"
    return o


# ---------------------------------------------------------------------------------------
# judging outcomes
# ---------------------------------------------------------------------------------------


def error_records(doc: dict[str, Any] | None) -> set[tuple[str, str, str]]:
    """Every error the document reports: scan-level records, and findings in state error."""
    if not doc:
        return set()
    found = {(e.get("path", ""), e.get("stage", ""), e.get("message", "")) for e in doc.get("errors", [])}
    for db in doc.get("databases", []):
        for e in db.get("errors", []) or []:
            found.add((e.get("path", ""), e.get("stage", ""), e.get("message", "")))
    for f in doc.get("findings", []):
        if f.get("state") == "error":
            found.add((f.get("subject", "") or "", "checks:" + str(f.get("rule", "")), str(f.get("message", ""))))
    return found


def contract_problems(o: Outcome, *, exit_2_ok: bool) -> list[str]:
    """How an outcome breaks the contract every hostile scan must keep (issue 15): no
    traceback, exit 0/1/2 (2 only when the whole target is unreadable, said in one line),
    and a result.json, when written, that is valid UTF-8 JSON."""
    problems = []
    if o.tracebacks:
        problems.append("traceback")
    if o.code not in (0, 1, 2):
        problems.append(f"exit code {o.code}")
    if o.code == 2:
        if not exit_2_ok:
            problems.append("exit 2 for a target that is readable as a whole")
        lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
        if not lines or not any(ln.startswith("flightcheck: error:") for ln in lines):
            problems.append(f"exit 2 without a 'flightcheck: error:' line (stderr: {o.stderr[-300:]!r})")
    if o.code in (0, 1) and o.doc is None:
        problems.append(o.result_problem or "no result.json although the scan finished")
    if o.result_problem:
        problems.append(o.result_problem)
    if "Aborted!" in o.stderr:
        problems.append("'Aborted!' on standard error")
    if re.search(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\]8;", o.stdout + o.stderr):
        problems.append("a raw terminal escape sequence reached the output")
    return problems


# ---------------------------------------------------------------------------------------
# host isolation: which paths were touched, and the target before/after
# ---------------------------------------------------------------------------------------


def interpreter_allowances() -> list[tuple[str, str]]:
    """Folders the scanner may read that are not the target, each with why."""
    allowed: list[tuple[str, str]] = []
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        allowed.append((os.path.realpath(p), ("the interpreter and the virtualenv: standard library, "
                                             "site-packages, .pth files, package metadata read by imports")))
        allowed.append((p, "the same, as spelled by sys.prefix (the venv path is not resolved)"))
    allowed.append(("/usr/lib/python3/dist-packages", "Debian's python3-rpm bindings, linked into the venv"))
    allowed.append(("/usr/lib/python3.11", "the base interpreter's standard library (sys.base_prefix/lib)"))
    for name in ("scanner", "rules", "reports"):
        allowed.append((str(TREE / name), f"flightcheck's own {name}/ (code, rule pack, templates, name tables)"))
    return allowed


#: Files outside every folder above that a scan may open, each with why.
HOST_FILE_ALLOWANCES: tuple[tuple[str, str], ...] = (
    ("/proc/self/mountinfo", ("scanner/target/directory.py reads this machine's mount table to keep a folder "
                             "scan on the root's own file systems (never into /proc, /sys or other mounts); "
                             "it is the scanner's view of the host, and none of it is reported")),
    ("/dev/null", ("multiprocessing's forked census workers reopen their standard input on os.devnull "
                  "(multiprocessing/util.py _close_stdin)")),
)
#: Programs a scan may start, each with why: never anything of the target.
EXEC_ALLOWANCES: tuple[tuple[str, str], ...] = (
    ("/usr/bin/python3", "the PyPI 'rpm' shim asks the host's own interpreter where Debian's rpm bindings are"),
    ("/usr/bin/python3.11", "the same probe, under the versioned name"),
)


def classify_events(batch: Batch, targets: Iterable[str], *, case: str | None = None,
                    also_allowed: Sequence[tuple[str, str]] = ()) -> dict[str, list[str]]:
    """The audit log sorted into problems: ``host``: a path outside the target and every
    allowance was read; ``write``: a path of the target was opened for writing or changed;
    ``special``: a device, FIFO or socket of the target was opened; ``exec``: a program was
    started. Empty lists mean a clean scan."""
    target_paths = [os.path.realpath(t) for t in targets]
    allowed = [*interpreter_allowances(), *also_allowed,
               (str(batch.work), ("the scan's own output folders and its private TMPDIR (copies of the "
                                 "target's rpm database for librpm, which writes into folders it opens)"))]
    problems: dict[str, list[str]] = {"host": [], "write": [], "special": [], "exec": []}

    def inside(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    for event, path, extra, _pid in (batch.events_of(case) if case else batch.events):
        if event == "case":
            continue
        if event in EXEC_EVENTS:
            if not any(repr(prog) in (path or "")[:len(repr(prog)) + 2] for prog, _ in EXEC_ALLOWANCES):
                problems["exec"].append(f"{event}: {path}")
            continue
        if path is None or path.startswith("<fd "):
            continue
        if path.startswith("file:"):  # an sqlite URI
            path = path[5:].split("?", 1)[0]
        norm = os.path.normpath(path)
        flags = extra[1] if event == "open" and extra else 0
        # where the kernel really went: every link on the way is followed, the last one
        # too unless O_NOFOLLOW (a path that is textually inside the root but crosses a
        # link to the host is a host read)
        if flags & os.O_NOFOLLOW:
            real = os.path.join(os.path.realpath(os.path.dirname(norm)), os.path.basename(norm))
        else:
            real = os.path.realpath(norm)
        in_target = any(inside(real, t) for t in target_paths)
        if in_target:
            writes = event in WRITE_EVENTS or (event == "open" and extra and (
                (extra[1] or 0) & WRITE_FLAGS or any(c in (extra[0] or "") for c in "wax+")))
            if writes:
                problems["write"].append(f"{event} {norm} {extra}")
            try:
                st = os.lstat(real)
            except OSError:
                continue
            if event == "open" and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                                        or (stat.S_ISLNK(st.st_mode) and flags & os.O_NOFOLLOW)):
                problems["special"].append(f"opened {norm} ({stat.filemode(st.st_mode)})")
            continue
        if norm in {f for f, _ in HOST_FILE_ALLOWANCES}:
            continue
        if not any(inside(real, a) for a, _ in allowed):
            problems["host"].append(f"{event} {norm}" + (f" (really {real})" if real != norm else ""))
    return {k: sorted(set(v)) for k, v in problems.items()}


def tree_state(paths: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Every file under the targets (or the image files themselves): type, mode, size, mtime
    (ns) and a SHA-256 of its data. Sparse files are hashed region by region (SEEK_DATA /
    SEEK_HOLE) so a 16 GiB hole costs nothing; FIFOs and devices are never opened."""
    state: dict[str, tuple[Any, ...]] = {}

    def record(p: str) -> None:
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            state[p] = (kind, os.readlink(p), st.st_mtime_ns)
        elif stat.S_ISREG(st.st_mode):
            state[p] = (kind, st.st_mode, st.st_size, st.st_mtime_ns, _sparse_sha256(p, st.st_size))
        else:
            state[p] = (kind, st.st_mode, st.st_mtime_ns)

    for top in paths:
        if os.path.isdir(top) and not os.path.islink(top):
            record(top)
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    record(os.path.join(dirpath, name))
        elif os.path.lexists(top):
            record(top)
    return state


def _sparse_sha256(path: str, size: int) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(start.to_bytes(8, "little"))
            os.lseek(fd, start, os.SEEK_SET)
            left = end - start
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            pos = end
    finally:
        os.close(fd)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def state_diff(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> list[str]:
    """What changed in the targets between two :func:`tree_state` snapshots."""
    changes = [f"removed {p}" for p in before if p not in after]
    changes += [f"created {p}" for p in after if p not in before]
    changes += [f"changed {p}: {before[p]} -> {after[p]}" for p in before if p in after and before[p] != after[p]]
    return sorted(changes)


# ---------------------------------------------------------------------------------------
# strace: what the audit hook cannot see
# ---------------------------------------------------------------------------------------

_STRACE_LINE = re.compile(r'(?:open|openat|openat2)\((?:(?:AT_FDCWD(?:<[^>]*>)?|\d+<(?P<dir>[^>]*)>|\d+), )?'
                          r'"(?P<path>(?:[^"\\]|\\.)*)"')


def strace_opens(argv: Sequence[str], work: Path, *, timeout: float = CASE_SECONDS) -> tuple[int, set[str]]:
    """Run ``flightcheck ARGV`` (the real console entry point) under ``strace -f -y`` and
    return its exit code and every path any thread or process opened, C libraries
    included (librpm, sqlite, libc's locale files). ``-y`` prints the folder behind a
    ``dir_fd``, so relative ``openat`` calls are placed too."""
    strace = shutil.which("strace")
    if strace is None:
        raise FileNotFoundError("strace")
    work.mkdir(parents=True, exist_ok=True)
    log = work / "strace.log"
    tmpdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTCHECK_")}
    env.update({"TMPDIR": str(tmpdir), "PYTHONPATH": str(TREE), "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    proc = subprocess.run([strace, "-f", "-y", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log),
                           str(PYTHON), "-m", "scanner", *argv, "-o", str(work / "out")],
                          cwd=tmpdir, env=env, capture_output=True, timeout=timeout, check=False,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT)))
    paths: set[str] = set()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _STRACE_LINE.search(line)
        if not m:
            continue
        path = m.group("path").encode().decode("unicode_escape")
        if not path.startswith("/"):
            path = os.path.join(m.group("dir") or str(tmpdir), path)
        paths.add(os.path.normpath(path))
    return proc.returncode, paths
