"""Confinement for processes that run learner code: resource limits and an unprivileged user.

    python autograder/confine.py --memory MB --cpu S --processes N --files MB [--home DIR] [--own PATH]... [--offline] -- CMD...

sets the limits, and, when started as root, gives the paths in ``--own`` to the unprivileged
user ``nobody`` and becomes that user, then replaces itself with CMD. The learner's kernel and
every checking worker are started this way, so learner code

- cannot use more than MB of address space (``RLIMIT_AS``: an allocation fails with MemoryError),
- cannot use more than S seconds of CPU time, in any process it starts (``RLIMIT_CPU``),
- cannot start more than N processes or threads beyond those its user already has
  (``RLIMIT_NPROC``, which counts per user and does not bind root; as root the process is
  put in a pids cgroup of its own instead, where the machine has one, and ``release`` kills
  whatever is left in it, including processes that escaped into a session of their own),
- cannot write a file larger than MB (``RLIMIT_FSIZE``), and leaves no core dump,
- when the grader runs as root and ``nobody`` can reach the Python installation: runs as
  ``nobody``, so it cannot read the instructor's secret file or anything else private to
  root, nor signal the grader's processes,
- cannot reach the network (``--offline``): it runs in a network namespace of its own whose
  only interface is loopback (a notebook's own torchrun still works; the grader, outside,
  talks to the kernel through Unix sockets). As root the namespace is made directly; as an
  ordinary user inside an unprivileged user namespace, where the machine allows them.
  ``offline_possible`` tells beforehand whether this machine allows it, so that a report can say
  when learner code could reach the network.

Run as root where ``nobody`` cannot run this Python (a Python under /root), the process
stays root but is isolated instead: it gets a PID namespace of its own (it sees no other
process, so not the grader's environment either), a mount namespace in which the files of
``--hide`` (the instructor's secret) read as empty and the cgroup file system is not there,
and no capabilities at all, so it can neither undo its limits, nor mount, nor trace.

Run by an ordinary user, the limits hold but the user is the grader's: the secret is never
in the learner's environment, but learner code can read whatever that user can (the
secret file, the grader's own environment), so graded work belongs in a container run as
root, or in an account that holds nothing but the grading run.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import pwd
import resource
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass

MB = 1024 * 1024
SANDBOX_USER = "nobody"
PIDS_CGROUP = pathlib.Path("/sys/fs/cgroup/pids")  # cgroup v1; v2 is /sys/fs/cgroup with cgroup.procs


@dataclass(frozen=True)
class Confinement:
    """The limits of one confined process (memory and files in MB, CPU in seconds)."""

    memory: int = 8192
    cpu: int = 1800
    processes: int = 256
    files: int = 512
    hide: tuple[str, ...] = ()  # files learner code must not read (the instructor's secret)
    offline: bool = True        # a network namespace with loopback only, where one can be made

    def prefix(self, home: str | None = None, own: tuple[str, ...] = ()) -> list[str]:
        """The command-line prefix that starts a command under these limits."""
        # Run as a script, not ``-m autograder.confine``: importing the package would import torch.
        cmd = [sys.executable, os.path.abspath(__file__), "--memory", str(self.memory), "--cpu", str(self.cpu),
               "--processes", str(self.processes), "--files", str(self.files)]
        if home:
            cmd += ["--home", home]
        for path in own:
            cmd += ["--own", path]
        for path in self.hide:
            cmd += ["--hide", path]
        if self.offline:
            cmd += ["--offline"]
        return cmd + ["--"]


def reachable_by_others(path: str) -> bool:
    """Whether every folder above ``path`` can be traversed, and the file read, by any user."""
    p = pathlib.Path(os.path.realpath(path))
    try:
        if not p.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


def sandbox_user() -> pwd.struct_passwd | None:
    """The user that learner code runs as: ``nobody`` when the grader is root and ``nobody`` can
    run this Python and import the course; else None (learner code runs as the grader's user)."""
    if os.geteuid() != 0:
        return None
    import importlib.util

    torch = importlib.util.find_spec("torch")
    needed = (sys.executable, __file__, torch.origin if torch and torch.origin else "/")
    if not all(reachable_by_others(p) for p in needed):
        return None
    try:
        return pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return None


def cgroup(pid: int) -> pathlib.Path:
    return PIDS_CGROUP / f"minidl-{pid}"


def enter_cgroup(processes: int) -> bool:
    """As root: put this process in a pids cgroup of its own that allows ``processes`` tasks."""
    if os.geteuid() != 0 or not PIDS_CGROUP.is_dir():
        return False
    try:
        folder = cgroup(os.getpid())
        folder.mkdir(exist_ok=True)
        (folder / "pids.max").write_text(str(processes))
        (folder / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def release(pid: int) -> None:
    """Kill every process left in the cgroup of confined process ``pid`` and remove the cgroup."""
    folder = cgroup(pid)
    if not folder.is_dir():
        return sweep()
    for _ in range(50):  # killed processes leave the cgroup once reaped
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            folder.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    sweep()


def sweep() -> None:
    """Remove the empty cgroups of confined processes that are gone (their last processes were
    reaped after ``release`` gave up waiting)."""
    for folder in PIDS_CGROUP.glob("minidl-*") if PIDS_CGROUP.is_dir() else ():
        try:
            pid = int(folder.name.split("-", 1)[1])
            if not (folder / "cgroup.procs").read_text().split() and not os.path.exists(f"/proc/{pid}"):
                folder.rmdir()
        except (OSError, ValueError):
            continue


def tasks_of(uid: int) -> int:
    """How many processes and threads ``uid`` runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x20000000, 0x40000000, 0x10000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def offline() -> bool:
    """Continue in a network namespace of its own, loopback up and nothing else; False if the
    kernel refuses (not root, and no unprivileged user namespaces)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        if libc.unshare(CLONE_NEWNET) != 0:
            return False
    else:  # an unprivileged user namespace owns the network one; inside it this user is itself
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
        try:
            pathlib.Path("/proc/self/setgroups").write_text("deny")
            pathlib.Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
            pathlib.Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        except OSError:
            pass  # unmapped ids read as nobody inside; files are still checked against the real ones
    return loopback_up()


def loopback_up() -> bool:
    """Bring this network namespace's ``lo`` up (a new namespace starts with it down)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            request = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
            return True
        except OSError:
            return False


@functools.lru_cache(maxsize=1)
def offline_possible() -> bool:
    """Whether confined processes on this machine can be cut off from the network (tried once,
    in a throw-away process)."""
    probe = [sys.executable, os.path.abspath(__file__), "--offline-probe"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38


def isolate(hide: list[str]) -> bool:
    """As root: continue in new PID and mount namespaces without capabilities (see the module
    docstring). This process stays outside and relays the exit; False if the kernel refuses."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS | CLONE_NEWPID) != 0:
        return False
    # Inside, the kernel cannot see its launcher die (its parent id reads 0): this wrapper is
    # killed with the launcher, and the namespace with this wrapper.
    launcher = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != launcher:  # the launcher died just before the line above
        os._exit(1)
    child = os.fork()
    if child:
        relay(child)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the namespace dies with this wrapper
    mounts = [(b"none", b"/", None, MS_REC | MS_PRIVATE), (b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)]
    mounts += [(b"/dev/null", os.fsencode(p), None, MS_BIND) for p in hide if os.path.isfile(p)]
    for source, target, kind, flags in mounts:
        if libc.mount(source, target, kind, flags, None) != 0:
            raise SystemExit(f"confine: cannot mount {target!r} (errno {ctypes.get_errno()})")
    if os.path.isdir("/sys/fs/cgroup"):  # out of sight: a process could move itself out of its cgroup
        libc.mount(b"tmpfs", b"/sys/fs/cgroup", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    return True


def relay(child: int) -> None:
    """Outside the namespaces: pass termination signals on, then exit as the child did."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt reaches the child through its group
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda number, frame: os.kill(child, number))
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def confine(c: Confinement, home: str | None, own: list[str]) -> None:
    """Apply ``c`` to this process and, as root, become the sandbox user (after giving it ``own``)."""
    if c.offline:
        offline()  # where it fails, the grader says so in the report (offline_possible)
    user = sandbox_user()
    uid = user.pw_uid if user else os.getuid()
    if user is None:
        enter_cgroup(c.processes)
    for limit, value in ((resource.RLIMIT_AS, c.memory * MB), (resource.RLIMIT_CPU, c.cpu),
                         (resource.RLIMIT_FSIZE, c.files * MB), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, tasks_of(uid) + c.processes)):
        soft, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value))
    if home:
        for name in ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            os.environ[name] = home
    if user is None:
        if os.geteuid() == 0:
            isolate(list(c.hide))
        return
    for path in own + ([home] if home else []):
        os.chown(path, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def main(argv: list[str]) -> None:
    if argv == ["--offline-probe"]:
        raise SystemExit(0 if offline() else 1)
    if "--" not in argv:
        raise SystemExit("usage: python -m autograder.confine [options] -- CMD...")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m autograder.confine")
    parser.add_argument("--memory", type=int, default=Confinement.memory)
    parser.add_argument("--cpu", type=int, default=Confinement.cpu)
    parser.add_argument("--processes", type=int, default=Confinement.processes)
    parser.add_argument("--files", type=int, default=Confinement.files)
    parser.add_argument("--home")
    parser.add_argument("--own", action="append", default=[])
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args(argv[:cut])
    confine(Confinement(args.memory, args.cpu, args.processes, args.files, tuple(args.hide), args.offline),
            args.home, args.own)
    command = argv[cut + 1:]
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
