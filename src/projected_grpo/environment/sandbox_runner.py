"""Sandbox runner: a stdlib-only worker process that executes untrusted submissions.

Started by ``sandbox.Sandbox`` as ``python -I -S sandbox_runner.py CONFIG_JSON`` with a
scrubbed environment. It never imports the project, torch or the problem's expected
answers: a job carries only source code and test *arguments*; return values are reported
back as plain data and compared by the trainer-side grader, out of the submission's reach.

Process tree of one job::

    runner ──fork──> supervisor (new session; new pid/mount/ipc/uts namespaces)
                       ├─ tmpfs mounted on the job's empty cwd (disk quota)
                       ├─ every pre-existing mount remounted read-only
                       ├─ private tmpfs over /tmp, /var/tmp, /dev/shm
                       └─fork──> submission (pid 1 of its namespace: when it ends,
                                 every process it left behind is killed by the kernel)
                                 joins the slot's control group, rlimits, the
                                 slot's own uid (when root), no_new_privs,
                                 stdin /dev/null, stdout/stderr/report pipes

The runner itself lives in a private network namespace (only a down loopback), entered
once at start-up. It is one *slot* of the pool and holds, for its lifetime, a uid of a
small reserved range (no other runner on the machine has it, so per-uid limits and any
leftover state are per slot) and, where the machine allows, a control group (cgroup v1 or
v2) that every job's whole process tree joins: memory is limited on the tree's total,
processes on the tree's count, and the supervisor reads the tree's CPU time in
nanoseconds and kills the tree when it passes ``cpu_s``. Where the OS forbids a layer (no
root, no user namespaces, no cgroup controllers), the layer is skipped and reported in
the start-up ``isolation`` message; nothing is silent.

Wire protocol on stdin/stdout: 4-byte big-endian length + UTF-8 JSON, both directions.
"""

import ctypes
import fcntl
import json
import os
import pwd
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_MOUNT_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
PR_SET_NO_NEW_PRIVS = 38
MNT_DETACH = 2
SYS_pivot_root = 155 if os.uname().machine == "x86_64" else 41  # aarch64: 41
NOBODY = 65534
# Reserved uids, one per live runner (slot) on the machine; uids that name an account are
# skipped. Lock files in UID_LOCK_DIR say which are held.
SLOT_UID_BASE, SLOT_UID_COUNT = 60200, 64
UID_LOCK_DIR = "/run/pgrpo-sandbox"
CGROUP_PARENT = "pgrpo-sandbox"  # created inside the runner's own group(s)
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
REPORT_FD = 3
# Inodes per writable tmpfs: tmpfs counts only data pages against its size, and empty files or
# directories cost kernel memory that no rlimit sees (~1 KiB each, ~100k a second).
MAX_INODES = 4096
SETUP_FAILED = 71
# Imported once here so submissions' usual imports are instant after fork.
PRELOAD = (
    "typing", "collections", "itertools", "functools", "heapq", "bisect", "math", "string", "re",
    "operator", "random", "datetime", "copy", "pathlib", "dataclasses", "decimal", "fractions",
    "statistics", "array", "io", "threading",
)  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}",
    )


# ---------------------------------------------------------------- wire protocol


def read_message(fh):
    head = fh.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return json.loads(fh.read(n).decode("utf-8"))


def write_message(fh, obj):
    data = json.dumps(obj).encode("utf-8")
    fh.write(struct.pack(">I", len(data)) + data)
    fh.flush()


# ---------------------------------------------------------------- runner start-up


def enter_runner_namespaces(want_network_isolation):
    """Enter a private network namespace (and a user namespace when not root).

    Returns the isolation facts established for every job of this runner.
    """
    facts = {"root": os.geteuid() == 0, "user_namespace": False, "network_namespace": False}
    if not want_network_isolation and facts["root"]:
        return facts
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNET if want_network_isolation else 0
    try:
        if facts["root"]:
            _unshare(flags)
        else:
            _unshare(CLONE_NEWUSER | flags)
            with open("/proc/self/setgroups", "w") as fh:
                fh.write("deny")
            with open("/proc/self/uid_map", "w") as fh:
                fh.write(f"0 {uid} 1")
            with open("/proc/self/gid_map", "w") as fh:
                fh.write(f"0 {gid} 1")
            facts["user_namespace"] = True
        facts["network_namespace"] = bool(flags)
    except OSError as exc:
        facts["namespace_error"] = str(exc)
    return facts


# ---------------------------------------------------------------- the slot: a uid and a control group


def claim_slot_uid(lock_dir=UID_LOCK_DIR):
    """The first uid of the reserved range that no live runner on this machine holds, as
    (uid, lock_fd); (None, reason) when none can be had. A uid is held by an flock on its
    lock file, which the kernel releases when the runner ends, however it ends."""
    try:
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        if os.stat(lock_dir).st_uid != 0:
            return None, f"{lock_dir} is not owned by root"
    except OSError as exc:
        return None, f"{lock_dir}: {exc.strerror}"
    for uid in range(SLOT_UID_BASE, SLOT_UID_BASE + SLOT_UID_COUNT):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        fd = os.open(f"{lock_dir}/uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    return None, f"all {SLOT_UID_COUNT} reserved uids from {SLOT_UID_BASE} are held"


def _unescape(field):
    return field.encode().decode("unicode_escape")


def _inside(point, mount_root, path):
    """The directory of cgroup ``path`` under a mount of the hierarchy's ``mount_root``."""
    if mount_root != "/" and path.startswith(mount_root):
        path = path[len(mount_root) :]
    return point.rstrip("/") + path.rstrip("/")


def own_cgroup_dirs(mountinfo, proc_cgroup, version="auto"):
    """This process's own control group directories, from the text of
    ``/proc/self/mountinfo`` and ``/proc/self/cgroup``: ("v1", {controller: dir}) when
    memory, pids and cpuacct are each mounted as cgroup v1, else ("v2", {"": dir}) for a
    cgroup2 mount. ``version`` "v1" or "v2" asks for one. Raises OSError saying what is
    missing."""
    own = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    v1, v2 = {}, None
    for line in mountinfo.splitlines():
        left, right = line.split(" - ", 1)
        mount_root, point = (_unescape(f) for f in left.split()[3:5])
        fstype, _, options = right.split()[:3]
        if fstype == "cgroup":
            for name in options.split(","):
                if name in V1_CONTROLLERS and name in own:
                    v1[name] = _inside(point, mount_root, own[name])
        elif fstype == "cgroup2" and "" in own and v2 is None:
            v2 = _inside(point, mount_root, own[""])
    if version in ("auto", "v1") and len(v1) == len(V1_CONTROLLERS):
        return "v1", v1
    if version in ("auto", "v2") and v2 is not None:
        return "v2", {"": v2}
    if version == "v1":
        missing = [c for c in V1_CONTROLLERS if c not in v1]
        raise OSError(f"cgroup v1 controller(s) not mounted: {', '.join(missing)}")
    raise OSError("no cgroup v1 controllers (memory, pids, cpuacct) or cgroup2 mount")


def _write(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def _procs(directory):
    try:
        with open(directory + "/cgroup.procs") as fh:
            return [int(pid) for pid in fh.read().split()]
    except OSError:
        return []


def _empty_group(directories, timeout_s):
    """SIGKILL every process in the groups until they are empty; True when they are."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = {pid for d in directories for pid in _procs(d)}
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)


def _is_live_runner(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"sandbox_runner" in fh.read()
    except OSError:
        return False


def remove_stale_groups(parents):
    """Empty and remove the slot groups of runners that no longer live (a killed run)."""
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            if name.startswith("runner-") and name[7:].isdigit() and not _is_live_runner(int(name[7:])):
                _empty_group([parent + "/" + name], 2.0)
                try:
                    os.rmdir(parent + "/" + name)
                except OSError:
                    pass


class SlotGroup:
    """This runner's control group: one directory per v1 hierarchy (memory, pids, cpuacct),
    or one cgroup2 directory. The runner sets the limits before each job and empties the
    group after it; the submission joins it through an inherited descriptor (it is out of
    reach of the cgroup filesystem after the pivot); the supervisor reads the CPU time of
    the whole tree from another, in nanoseconds."""

    def __init__(self, version, own_dirs):
        self.version = version
        self.parents = [d + "/" + CGROUP_PARENT for d in own_dirs.values()]
        remove_stale_groups(self.parents)
        name = f"runner-{os.getpid()}"
        self.dirs = {c: d + "/" + CGROUP_PARENT + "/" + name for c, d in own_dirs.items()}
        self._made = []
        try:
            for own, parent, path in zip(own_dirs.values(), self.parents, self.dirs.values()):
                self._make(own, parent, path)
            cpu_dir = self.dirs["cpuacct"] if version == "v1" else self.dirs[""]
            self.cpu_fd = os.open(
                cpu_dir + ("/cpuacct.usage" if version == "v1" else "/cpu.stat"), os.O_RDONLY
            )
            self.join_fds = [os.open(d + "/cgroup.procs", os.O_WRONLY) for d in self.dirs.values()]
            self.dir_fd = os.open(next(iter(self.dirs.values())), os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self.remove()
            raise
        self._limits = None

    def _make(self, own, parent, path):
        if self.version == "v2":  # controllers must be enabled on the way down
            for d in (own, parent):
                os.makedirs(d, exist_ok=True)
                with open(d + "/cgroup.controllers") as fh:
                    missing = {"memory", "pids"} - set(fh.read().split())
                if missing:
                    raise OSError(f"{d}: controller(s) {', '.join(sorted(missing))} not available")
                with open(d + "/cgroup.subtree_control") as fh:
                    enable = {"memory", "pids"} - set(fh.read().split())
                try:
                    if enable:
                        _write(d + "/cgroup.subtree_control", " ".join("+" + c for c in sorted(enable)))
                except OSError as exc:  # EBUSY: a v2 group that holds processes cannot delegate
                    raise OSError(f"{d}: enabling memory and pids for child groups: {exc.strerror}") from exc
        for attempt in range(3):  # another runner may remove the empty parent meanwhile
            try:
                os.makedirs(parent, exist_ok=True)
                os.mkdir(path)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        self._made.append(path)

    def prepare(self, limits):
        """Before a job: an empty group, the memory limit on the tree's total, the process
        limit."""
        if not self.empty():
            raise RuntimeError("the slot's control group could not be emptied before the job")
        wanted = (limits["memory_bytes"], limits["processes"])
        if wanted == self._limits:
            return
        memory, processes = str(wanted[0]), str(wanted[1])
        if self.version == "v1":
            limit = self.dirs["memory"] + "/memory.limit_in_bytes"
            swap = self.dirs["memory"] + "/memory.memsw.limit_in_bytes"
            order = [limit, swap] if os.path.exists(swap) else [limit]
            try:
                for path in order:
                    _write(path, memory)
            except OSError:  # memsw must stay >= the limit: raise it first
                for path in reversed(order):
                    _write(path, memory)
            _write(self.dirs["pids"] + "/pids.max", processes)
        else:
            _write(self.dirs[""] + "/memory.max", memory)
            if os.path.exists(self.dirs[""] + "/memory.swap.max"):
                _write(self.dirs[""] + "/memory.swap.max", "0")
            _write(self.dirs[""] + "/pids.max", processes)
        self._limits = wanted

    def cpu_ns(self):
        """CPU time (user + system) of every process that has been in the group."""
        text = os.pread(self.cpu_fd, 4096, 0).decode()
        if self.version == "v1":
            return int(text)
        return 1000 * int(text.split("usage_usec", 1)[1].split()[0])

    def join(self):
        """In the submission process, while still root: move it into the group."""
        for fd in self.join_fds:
            os.write(fd, b"0")

    def kill_all(self):
        """In the supervisor: SIGKILL every process of the tree at once, rather than wait
        for its pid 1 to be scheduled to take its siblings down (they spin meanwhile)."""
        fd = os.open("cgroup.procs", os.O_RDONLY, dir_fd=self.dir_fd)
        try:
            pids = os.read(fd, 1 << 16).split()
        finally:
            os.close(fd)
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass

    def empty(self, timeout_s=2.0):
        """After a job: kill whatever is left in the group; True when it is empty."""
        return _empty_group(list(self.dirs.values()), timeout_s)

    def remove(self):
        for fd in getattr(self, "join_fds", []) + [
            getattr(self, "cpu_fd", None),
            getattr(self, "dir_fd", None),
        ]:
            if fd is not None:
                os.close(fd)
        self.join_fds, self.cpu_fd, self.dir_fd = [], None, None
        _empty_group(self._made, 2.0)
        for d in self._made + self.parents:  # the parents too, once no slot uses them
            try:
                os.rmdir(d)
            except OSError:
                pass
        self._made = []


def make_slot_group(version="auto"):
    """(SlotGroup, None) where a control group can be made here, else (None, reason)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            mountinfo = fh.read()
        with open("/proc/self/cgroup") as fh:
            proc_cgroup = fh.read()
        found, own_dirs = own_cgroup_dirs(mountinfo, proc_cgroup, version)
        return SlotGroup(found, own_dirs), None
    except OSError as exc:
        return None, str(exc)


# ---------------------------------------------------------------- one job


def _mount_flags(point):
    """Per-mount flags (nosuid, nodev, ...) that a read-only remount must keep."""
    flags = 0
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == point:
                flags = 0
                for opt in fields[5].split(","):
                    flags |= _MOUNT_OPTION_FLAGS.get(opt, 0)
    return flags


def _bind_readonly(source, target):
    """Bind ``source`` at ``target`` (directory or file) and make the bind read-only."""
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags(target))


def _isolate_filesystem(root_dir, limits):
    """In a fresh mount namespace, build a minimal root and pivot into it.

    The new root is a tmpfs holding read-only binds of the system libraries and the
    Python installation only (no project files, no data, no home directories), a
    quota'd tmpfs cwd at ``/work``, a private ``/tmp`` and a few device nodes. The old
    root stays at ``/.oldroot`` until the submission process has mounted its ``/proc``
    and detaches it. Returns (cwd_fd, facts).
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1048576,mode=0755")
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            os.symlink(os.readlink(top), root_dir + top)
        elif os.path.isdir(top):
            _bind_readonly(top, root_dir + top)
    for prefix in {sys.base_prefix, sys.base_exec_prefix}:
        if not os.path.isdir(root_dir + prefix):
            _bind_readonly(prefix, root_dir + prefix)
    for dev in DEVICES:
        _bind_readonly(dev, root_dir + dev)
    for scratch in ("/tmp", "/work", "/proc", "/.oldroot"):
        os.makedirs(root_dir + scratch, mode=0o755, exist_ok=True)
    _mount(
        "tmpfs",
        root_dir + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size=1048576,nr_inodes={MAX_INODES},mode=1777",
    )
    _mount(
        "tmpfs",
        root_dir + "/work",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={limits['disk_bytes']},nr_inodes={MAX_INODES},mode=0777",
    )
    cwd_fd = os.open(root_dir + "/work", os.O_RDONLY | os.O_DIRECTORY)
    os.chdir(root_dir)
    _check(_libc.syscall(SYS_pivot_root, b".", b".oldroot"), "pivot_root")
    os.chdir("/")
    return cwd_fd, {"tmpfs_cwd": True, "minimal_root": True}


def _finish_filesystem(pid_namespace):
    """In the submission process: mount its own /proc, detach the host's root, and make
    the new root read-only. Any failure here aborts the job (nothing runs half-isolated)."""
    if pid_namespace:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass  # some container runtimes forbid it; /proc is then an empty directory
    _check(_libc.umount2(b"/.oldroot", MNT_DETACH), "umount old root")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _apply_limits(limits):
    cpu = int(limits["cpu_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)


def _become_submission(job, cwd_fd, pipes, isolation, features):
    """In the forked submission process: finish isolation, then run the harness."""
    out_w, err_w, rep_w = pipes
    if features["cgroup"] is not None:
        try:
            features["cgroup"].join()
        except OSError as exc:
            os.write(err_w, f"sandbox set-up failed: joining the slot's control group: {exc}".encode())
            os._exit(SETUP_FAILED)
    if isolation["mount_namespace"]:
        try:
            _finish_filesystem(isolation["pid_namespace"])
        except OSError as exc:
            os.write(err_w, f"sandbox set-up failed: {exc}".encode())
            os._exit(SETUP_FAILED)
    else:
        os.setpgid(0, 0)
    os.fchdir(cwd_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(rep_w, REPORT_FD)
    os.closerange(REPORT_FD + 1, 1 << 16)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"})
    if os.geteuid() == 0 and not isolation["user_namespace"]:
        os.setgroups([])
        os.setgid(features["uid"])
        os.setuid(features["uid"])
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _apply_limits(job["limits"])
    run_harness(job)


CPU_POLL_S = 0.01  # the CPU-time check's period, far from the limit; finer near it


def _wait_with_deadline(pid, deadline, cpu_left_ns=None, kill_tree=None):
    """Wait for ``pid``; SIGKILL it (and, without a pid namespace, its group; and
    ``kill_tree()``) at the wall deadline, or once ``cpu_left_ns()`` (the CPU time the tree
    has left) is not positive. Returns (status, why): why is None, "wall" or "cpu"."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    cores = len(os.sched_getaffinity(0))
    why = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if pidfd is not None:
                os.close(pidfd)
            return status, why
        remaining = deadline - time.monotonic()
        cpu_left = cpu_left_ns() / 1e9 if cpu_left_ns is not None and why is None else None
        if why is None and (remaining <= 0 or (cpu_left is not None and cpu_left <= 0)):
            why = "wall" if remaining <= 0 else "cpu"
            targets = [lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)]
            for target in targets + ([kill_tree] if kill_tree else []):
                try:
                    target()
                except OSError:
                    pass
            remaining = 0.05
        elif cpu_left is not None:  # at most every core spends it; look again halfway there
            remaining = min(remaining, CPU_POLL_S, max(cpu_left / cores / 2, 0.0005))
        if pidfd is not None:
            poller.poll(max(remaining, 0.0005) * 1000)
        else:
            time.sleep(min(max(remaining, 0.0005), 0.005))


def _scan_files(cwd_fd, limits):
    """Regular top-level files of the cwd (no symlinks followed): name -> first bytes."""
    files = {}
    for entry in sorted(os.listdir(cwd_fd))[: limits["max_files_reported"]]:
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=cwd_fd)
        except OSError:
            continue
        try:
            if not os.path.stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            files[entry] = os.read(fd, limits["file_report_bytes"]).decode("utf-8", "replace")
        finally:
            os.close(fd)
    return files


def _supervise(job, cwd, pipes, meta_w, features):
    """The supervisor process: isolate, fork the submission, wait, report files."""
    os.setsid()
    isolation = {
        "pid_namespace": False,
        "mount_namespace": False,
        "user_namespace": features["user_namespace"],
    }
    if features["namespaces"]:
        _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
        isolation.update(pid_namespace=True, mount_namespace=True)
        cwd_fd, fs_facts = _isolate_filesystem(cwd, job["limits"])
        isolation.update(fs_facts)
    else:
        cwd_fd = os.open(cwd, os.O_RDONLY | os.O_DIRECTORY)
    if os.geteuid() == 0 and not features["user_namespace"]:
        os.fchown(cwd_fd, features["uid"], features["uid"])
    group = features["cgroup"]
    cpu_limit_ns = int(job["limits"]["cpu_s"] * 1e9)
    cpu_start_ns = group.cpu_ns() if group is not None else 0
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(meta_w)
        _become_submission(job, cwd_fd, pipes, isolation, features)
        os._exit(0)
    for fd in pipes:
        os.close(fd)
    cpu_left_ns = None if group is None else lambda: cpu_limit_ns - (group.cpu_ns() - cpu_start_ns)
    kill_tree = None if group is None else group.kill_all
    status, why = _wait_with_deadline(pid, start + job["limits"]["wall_s"], cpu_left_ns, kill_tree)
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code == SETUP_FAILED:
        os.write(
            meta_w, json.dumps({"setup_error": "submission process failed its isolation set-up"}).encode()
        )
        return
    if group is not None:
        cpu_s = (group.cpu_ns() - cpu_start_ns) / 1e9
    else:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = usage.ru_utime + usage.ru_stime
    meta = {
        "timed_out": why is not None,
        "cpu_exceeded": why == "cpu",
        "exit_code": exit_code,
        "files": _scan_files(cwd_fd, job["limits"]),
        "isolation": isolation,
        "cpu_s": cpu_s,
    }
    os.write(meta_w, json.dumps(meta).encode())


def _collect(fds_caps, deadline):
    """Read pipes until EOF or ``deadline``; keep at most ``cap`` bytes of each."""
    chunks = {fd: [] for fd in fds_caps}
    sizes = dict.fromkeys(fds_caps, 0)
    truncated = dict.fromkeys(fds_caps, False)
    open_fds = set(fds_caps)
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(remaining * 1000):
            data = os.read(fd, 65536)
            if not data:
                open_fds.discard(fd)
                continue
            room = fds_caps[fd] - sizes[fd]
            if room > 0:
                chunks[fd].append(data[:room])
                sizes[fd] += min(len(data), room)
            if len(data) > room:
                truncated[fd] = True
    return {fd: b"".join(c) for fd, c in chunks.items()}, truncated, bool(open_fds)


def run_job(job, base_dir, features):
    """Run one job; returns the raw outcome (stdout, report text, files, timing)."""
    limits = job["limits"]
    if features["cgroup"] is not None:
        features["cgroup"].prepare(limits)
    cwd = tempfile.mkdtemp(prefix="job-", dir=base_dir)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    meta_r, meta_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for fd in (out_r, err_r, rep_r, meta_r, 0, 1):
                os.close(fd)
            _supervise(job, cwd, (out_w, err_w, rep_w), meta_w, features)
        except BaseException as exc:  # report set-up failures instead of running unisolated
            try:
                os.write(meta_w, json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"}).encode())
            except OSError:
                pass
            code = 70
        os._exit(code)
    for fd in (out_w, err_w, rep_w, meta_w):
        os.close(fd)
    caps = {
        out_r: limits["stdout_bytes"],
        err_r: limits["stderr_bytes"],
        rep_r: limits["report_bytes"],
        meta_r: 1 << 22,
    }
    data, truncated, left_open = _collect(caps, start + limits["wall_s"] + 2.0)
    if left_open:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    status, _ = _wait_with_deadline(pid, time.monotonic() + 2.0)
    for fd in caps:
        os.close(fd)
    shutil.rmtree(cwd, ignore_errors=True)
    if features["cgroup"] is not None and not features["cgroup"].empty():
        raise RuntimeError("the slot's control group could not be emptied after the job")
    try:
        meta = json.loads(data[meta_r].decode() or "{}")
    except ValueError:
        meta = {"setup_error": "supervisor wrote an unreadable status"}
    if not meta:
        meta = {"setup_error": f"supervisor ended with status {os.waitstatus_to_exitcode(status)}"}
    meta.update(
        stdout=data[out_r].decode("utf-8", "replace"),
        stderr=data[err_r].decode("utf-8", "replace"),
        report=data[rep_r].decode("utf-8", "replace"),
        stdout_truncated=truncated[out_r],
        report_truncated=truncated[rep_r],
        wall_s=time.monotonic() - start,
    )
    return meta


# ---------------------------------------------------------------- harness (in the submission process)


def run_harness(job):
    """Execute the submission and report, one JSON line per fact, on fd 3.

    Order: module body (as ``__main__``), the ground-truth calls, the sentinel attributes
    of ``Solution()``, then the self-test lever. Everything the submission can reach is
    its own; the verdict is formed by the trainer-side grader from these reports.
    """
    dumps, write, exit_now = json.dumps, os.write, os._exit

    def emit(obj):
        try:
            write(REPORT_FD, (dumps(obj) + "\n").encode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001 - a broken report is the submission's loss
            pass

    def describe(exc):
        return f"{type(exc).__name__}: {str(exc)[:200]}"

    def flush_std():
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(job["preamble"] + "\n" + job["code"], "<submission>", "exec"), namespace)
        emit({"k": "load", "ok": True})
    except BaseException as exc:  # noqa: BLE001
        emit({"k": "load", "ok": False, "error": describe(exc)})
        flush_std()
        exit_now(0)
    solution_cls = namespace.get("Solution")
    for i, (args, kwargs) in enumerate(job["calls"]):
        try:
            value = getattr(solution_cls(), job["method"])(*args, **kwargs)
            emit({"k": "test", "i": i, "ok": True, "value": to_plain(value)})
        except BaseException as exc:  # noqa: BLE001
            emit({"k": "test", "i": i, "ok": False, "error": describe(exc)})
    try:
        instance = solution_cls()
        flag = any(bool(getattr(instance, attr, False)) for attr in job["sentinel_attrs"])
        emit({"k": "sentinel", "value": bool(flag)})
    except BaseException as exc:  # noqa: BLE001
        emit({"k": "sentinel", "value": False, "error": describe(exc)})
    lever = namespace.get(job["test_function"])
    try:
        if not callable(lever) and solution_cls is not None and hasattr(solution_cls, job["test_function"]):
            lever = getattr(solution_cls(), job["test_function"])
        if callable(lever):
            lever()
            emit({"k": "lever", "present": True, "ok": True})
        else:
            emit({"k": "lever", "present": False, "ok": False})
    except BaseException as exc:  # noqa: BLE001
        emit({"k": "lever", "present": True, "ok": False, "error": describe(exc)})
    flush_std()
    exit_now(0)


def to_plain(value, depth=0):
    """Return values as JSON data. Only exact builtin types are accepted, so an object
    that claims equality with everything cannot pass; dicts and sets are tagged."""
    if depth > 100:
        raise ValueError("return value nested deeper than 100")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return (
            value
            if value == value and value not in (float("inf"), float("-inf"))
            else {"__float__": repr(value)}
        )
    if kind in (list, tuple):
        return [to_plain(v, depth + 1) for v in value]
    if kind is dict:
        return {"__dict__": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind in (set, frozenset):
        return {"__set__": [to_plain(v, depth + 1) for v in value]}
    raise TypeError(f"unsupported return type {kind.__name__}")


# ---------------------------------------------------------------- main loop


def _empty_job():
    limits = {
        "wall_s": 5.0, "cpu_s": 2.0, "memory_bytes": 1 << 30, "file_bytes": 1 << 20, "open_files": 64,
        "processes": 64, "disk_bytes": 1 << 20, "stdout_bytes": 4096, "stderr_bytes": 4096,
        "report_bytes": 4096, "max_files_reported": 4, "file_report_bytes": 64,
    }  # fmt: skip
    job = {
        "code": "",
        "preamble": "",
        "calls": [],
        "method": "f",
        "test_function": "t",
        "sentinel_attrs": [],
        "limits": limits,
    }
    return job


def probe_job_isolation(base_dir, features):
    """Run an empty job with namespaces to learn whether the OS allows them."""
    outcome = run_job(_empty_job(), base_dir, dict(features, namespaces=True))
    if "setup_error" in outcome:
        return {"namespaces": False, "namespace_job_error": outcome["setup_error"]}
    return {"namespaces": True, **outcome["isolation"]}


def probe_slot_group(base_dir, features, version):
    """Make this slot's control group and run an empty job in it; (group, None) where
    that works, else (None, why not)."""
    group, why = make_slot_group(version)
    if group is None:
        return None, why
    try:  # limits that cannot be written (a parent that lost its controllers) end here, not the runner
        outcome = run_job(_empty_job(), base_dir, dict(features, cgroup=group))
    except (OSError, RuntimeError) as exc:
        outcome = {"setup_error": f"{type(exc).__name__}: {exc}"}
    if "setup_error" in outcome or not outcome.get("cpu_s"):
        try:
            group.remove()
        except OSError:
            pass
        return None, outcome.get("setup_error", "no CPU time accounted to the group")
    return group, None


def main():
    config = json.loads(sys.argv[1])
    for name in PRELOAD:
        __import__(name)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    facts = enter_runner_namespaces(config["network_isolation"])
    base_dir = tempfile.mkdtemp(prefix="pgrpo-sandbox-")
    os.chmod(base_dir, 0o711)
    facts["uid_drop"] = facts["root"] and not facts["user_namespace"]
    uid, uid_lock = NOBODY, None
    if facts["uid_drop"]:
        claimed, uid_lock = claim_slot_uid()
        if claimed is None:
            facts["uid_error"], uid_lock = uid_lock, None
        else:
            uid = claimed
    facts.update(slot_uid=uid if facts["uid_drop"] else None, uid_per_slot=uid_lock is not None)
    features = {"user_namespace": facts["user_namespace"], "namespaces": False, "uid": uid, "cgroup": None}
    if config["namespaces"]:
        probe = probe_job_isolation(base_dir, features)
        features["namespaces"] = probe["namespaces"]
        facts.update(probe)
    if config["cgroup"] == "off":
        facts["cgroup_error"] = "turned off by the caller"
    else:
        features["cgroup"], facts["cgroup_error"] = probe_slot_group(base_dir, features, config["cgroup"])
    facts["cgroup"] = features["cgroup"].version if features["cgroup"] is not None else None
    write_message(stdout, {"isolation": facts})
    try:
        while (job := read_message(stdin)) is not None:
            try:
                outcome = run_job(job, base_dir, features)
            except Exception as exc:  # noqa: BLE001 - keep serving; the pool reports it
                outcome = {"setup_error": f"runner: {type(exc).__name__}: {exc}"}
            outcome["id"] = job.get("id")
            write_message(stdout, outcome)
    finally:
        if features["cgroup"] is not None:
            features["cgroup"].remove()
        shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
