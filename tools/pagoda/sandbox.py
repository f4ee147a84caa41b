"""Running a submission's build as code we do not trust: nothing it does may reach the grader,
the machine or the next submission. The build runs

- as a user of its own: a sandbox uid and gid (no passwd entry, no groups, no capabilities,
  no_new_privs) or, when the grader is not root, inside bubblewrap (new user, PID, IPC and
  network namespaces);
- where the machine has namespaces, in a root of its own holding only the graded tree
  (read-only), its build folder, HOME and TMPDIR, the toolchain and the object cache (read-only)
  and a minimal /dev, /proc and /tmp: `.incbin`, `#include` or a build step reads no other
  submission, no grader file, no /etc;
- with a throwaway HOME and TMPDIR and an environment of its own (only PATH is the grader's);
- so that nothing it starts outlives it: a PID namespace, and every process of the sandbox's uid
  killed when the build ends. clean() also deletes what the uid wrote where the world may write.

The grader reads only the kernel ELF back (take_kernel(): a regular file reached without
following a link, once the build's processes are gone). On Gradescope (root in a container,
maybe without namespaces) the uid sandbox alone holds; it cannot hide what any user may read, so
there the region check (transplant.py) keeps `.incbin` and `#include` out of a submission.
"""
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time

# The sandbox's uids: one per build running on this machine, held by a lock in LOCK_DIR while its
# sandbox lives (clean() kills every process of its uid); a uid in use on the machine is skipped.
BASE_UID = 64200
UIDS = 256
LOCK_DIR = "/run/pagoda-sandbox"
# World-writable places a build could leave files in; cleaned after every build.
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
MAX_KERNEL = 256 << 20      # bytes: a bigger "kernel" is not a kernel this grader boots
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The machine's folders a build's root holds, read-only: the toolchain (compilers, CMake, ninja,
# ccache, Python, their libraries). A symbolic link among them (/bin -> usr/bin) is made again.
TOOLCHAIN = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The devices a build's root holds.
DEVICES = ("null", "zero", "full", "random", "urandom")


class SandboxError(Exception):
    """The sandbox cannot be made on this machine (the message says what to do)."""


def _works(argv):
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _uid_in_use(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        pass
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    return True
            except OSError:
                pass
    return False


def detect(force=None):
    """How builds are sandboxed here: "namespaces" (root, with PID/mount/network namespaces),
    "uid" (root without them: a container), "bwrap" (not root); @p force chooses one (tests).
    Raises SandboxError when none can run."""
    if force:
        return force
    if os.geteuid() == 0:
        if shutil.which("unshare") and _works(["unshare", "--pid", "--mount", "--net", "--ipc", "--fork",
                                                "--kill-child", "--mount-proc", "true"]):
            return "namespaces"
        return "uid"
    if shutil.which("bwrap") and _works(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent",
                                          "true"]):
        return "bwrap"
    raise SandboxError("grading a submission runs its build in a sandbox: run this as root (sudo), "
                       "or install bubblewrap (apt-get install bubblewrap) on a machine that allows "
                       "user namespaces")


# Run as root in the build's new mount namespace, with the root's folder, the build's folder, what
# the root holds ({"devices": DEVICES, "mounts": Sandbox._mounts()}, JSON) and the command:
# makes the root (a tmpfs), enters it (chroot) and runs the command there.
_ENTER_ROOT = r'''
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
BIND, RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT = 4096, 1, 2, 4, 8, 32
def mount(source, target, kind, flags, data=None):
    if libc.mount(source.encode(), target.encode(), kind and kind.encode(), flags, data and data.encode()):
        error = ctypes.get_errno()
        sys.exit(f"sandbox: mount {source} on {target}: {os.strerror(error)}")
root, cwd, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
os.umask(0o022)
mount("none", root, "tmpfs", NOSUID, "mode=0755,size=64m")
os.mkdir(root + "/tmp", 0o1777)
os.chmod(root + "/tmp", 0o1777)
os.mkdir(root + "/proc")
mount("proc", root + "/proc", "proc", NOSUID | NODEV | NOEXEC)
os.mkdir(root + "/dev")
os.symlink("/proc/self/fd", root + "/dev/fd")
for device in spec["devices"]:
    open(root + "/dev/" + device, "w").close()
    mount("/dev/" + device, root + "/dev/" + device, None, BIND)
for kind, path in spec["mounts"]:
    inside = root + path
    if kind == "link":
        os.symlink(os.readlink(path), inside)
        continue
    os.makedirs(inside, exist_ok=True)
    mount(path, inside, None, BIND)
    if kind == "ro":
        mount("none", inside, None, BIND | REMOUNT | RDONLY | NOSUID | NODEV)
os.chroot(root)
os.chdir(cwd)
os.execvp(sys.argv[4], sys.argv[4:])
'''


class Sandbox:
    """One build's sandbox, under @p base (a folder of the grader's: HOME, TMPDIR and the root go
    there), for a build writing only @p build_dir. @p readable: folders of the grader's the build
    reads (the object cache), read-only in its root; the folder the build runs in (wrap()'s cwd)
    is the other. Use: prepare(), then wrap() each command, then clean()."""

    def __init__(self, base, build_dir, readable=(), mode=None):
        self.mode = detect(mode)
        self.base = base
        self.build_dir = build_dir
        self.readable = [os.path.abspath(r) for r in readable if os.path.isdir(r)]
        self.uid, self._lock = None, None
        if self.mode in ("namespaces", "uid"):
            self.uid, self._lock = _take_uid()
        self.home = os.path.join(base, "home")
        self.tmp = os.path.join(base, "tmp")
        self.info = os.path.join(base, "bwrap-info.json")
        self.root = os.path.join(base, "root")

    def describe(self):
        """What this sandbox is, for the build log."""
        return {"namespaces": f"uid {self.uid}, in new PID, IPC, network and mount namespaces, in a root "
                              "holding only its tree and the toolchain",
                "uid": f"uid {self.uid} (no namespaces on this machine), reading what any user may read",
                "bwrap": "bubblewrap (a user namespace, a root holding only its tree and the toolchain)"}[self.mode]

    def prepare(self):
        """Makes the build folder, HOME and TMPDIR, owned by the sandbox (nothing else is), and
        the folder its root is mounted on."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        for d in (self.build_dir, self.home, self.tmp):
            os.makedirs(d, exist_ok=True)
            if self.uid is not None:
                os.chown(d, self.uid, self.uid)
            os.chmod(d, 0o700)
        if self.uid is not None:
            # The path to the build folder must be walkable by the sandbox's uid.
            _walkable(self.build_dir)
            _walkable(self.home)
        return self

    def environment(self, extra=None):
        env = {"PATH": os.environ.get("PATH", SAFE_PATH), "HOME": self.home, "TMPDIR": self.tmp,
               "LANG": "C.UTF-8", "TERM": "dumb", "USER": "pagoda-build", "LOGNAME": "pagoda-build"}
        env.update(extra or {})
        return env

    def _mounts(self, cwd):
        """What the build's root holds: [(kind, path)], kind "ro" (the machine's, read-only),
        "rw" (writable), "link" (a symbolic link made again), in mounting order (a folder
        before the folders inside it)."""
        found = []
        for top in TOOLCHAIN:
            if os.path.islink(top):
                found.append(("link", top))
            elif os.path.isdir(top):
                found.append(("ro", top))
        found += [("ro", r) for r in self.readable if not _contains(r, cwd)]
        found.append(("ro", os.path.abspath(cwd)))
        found += [("rw", os.path.abspath(d)) for d in (self.build_dir, self.home, self.tmp)]
        return found

    def wrap(self, argv, cwd):
        """The command line that runs @p argv in the sandbox, in @p cwd (pass env=environment()
        to Popen)."""
        if self.mode == "bwrap":
            # (bwrap's root is an empty tmpfs of its own)
            wrapped = ["bwrap", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
            for kind, path in self._mounts(cwd):
                if kind == "link":
                    wrapped += ["--symlink", os.readlink(path), path]
                else:
                    wrapped += ["--ro-bind" if kind == "ro" else "--bind", path, path]
            wrapped += ["--unshare-all", "--die-with-parent", "--new-session", "--info-fd", "3",
                        "--chdir", cwd, "--", *argv]
            # (bwrap says which PID namespace it made on descriptor 3: clean() waits for it to empty)
            return ["/bin/sh", "-c", 'exec "$@" 3>"$0"', self.info, *wrapped]
        drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--"]
        if self.mode == "uid":
            return drop + argv
        # PID, network, IPC and mount namespaces; _ENTER_ROOT makes the tmpfs root, then the uid drop.
        spec = json.dumps({"devices": DEVICES, "mounts": self._mounts(cwd)})
        return ["unshare", "--pid", "--mount", "--net", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private", "--", sys.executable, "-I", "-S", "-c", _ENTER_ROOT, self.root, cwd, spec,
                *drop, *argv]

    def release(self):
        """Gives the sandbox's uid back (after clean(): nothing of it is left)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def clean(self):
        """Ends every process of the sandbox and deletes what it left where the world writes.
        Returns what was found: (processes killed, paths deleted)."""
        if self.uid is None:
            return end_namespace(self.info), []
        return kill_all(self.uid), scrub(self.uid)


def _take_uid():
    """(a uid no other sandbox of this machine holds, the open lock file that holds it)."""
    import fcntl
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    if os.stat(LOCK_DIR).st_uid != 0 or os.stat(LOCK_DIR).st_mode & 0o077:
        raise SandboxError(f"{LOCK_DIR} must be root's alone (mode 0700)")
    for uid in range(BASE_UID, BASE_UID + UIDS):
        lock = open(os.path.join(LOCK_DIR, f"{uid}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if not _uid_in_use(uid):
            return uid, lock
        lock.close()
    raise SandboxError(f"every sandbox uid from {BASE_UID} to {BASE_UID + UIDS - 1} is taken")


def _contains(outer, inner):
    outer, inner = os.path.realpath(outer), os.path.realpath(inner)
    return inner == outer or inner.startswith(outer + os.sep)


def _walkable(path):
    """Raises SandboxError when a folder on the way to @p path cannot be walked by others."""
    path = os.path.dirname(os.path.abspath(path))
    while True:
        st = os.stat(path)
        if not st.st_mode & stat.S_IXOTH:
            raise SandboxError(f"{path} cannot be entered by other users (mode {stat.filemode(st.st_mode)}): "
                               "the sandboxed build cannot reach its folder below it")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def processes_of(uid):
    """Ids of the processes whose real, effective or saved uid is @p uid."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(l.split(":", 1) for l in f if ":" in l)
        except OSError:
            continue
        # (a zombie has ended already: its parent, maybe a container's init, reaps it or not)
        if str(uid) in fields.get("Uid", "").split()[:3] and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(pid))
    return found


# Sent from the sandbox's own uid: kill(-1) reaches every process of that uid at once, so a
# process that forks as fast as it can still loses the race.
_KILL = "import os, signal\nos.kill(-1, signal.SIGKILL)\n"


def kill_all(uid):
    """Kills every process running as @p uid, until none is left; returns how many were found
    running."""
    first = None
    for _ in range(100):
        pids = processes_of(uid)
        if first is None:
            first = len(pids)
        if not pids:
            return first
        subprocess.run([sys.executable, "-I", "-S", "-c", _KILL], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.01)
    raise SandboxError(f"processes of the sandbox's uid {uid} keep appearing after 100 rounds of SIGKILL")


def end_namespace(info, wait=30.0):
    """Waits until no process is left in the PID namespace bwrap reported in @p info (the kernel
    kills them all when its first process ends, but not at once), killing any that outlive
    @p wait seconds; returns how many were found."""
    try:
        with open(info) as f:
            inode = json.load(f)["pid-namespace"]
    except (OSError, ValueError, KeyError):
        return 0
    link, first, limit = f"pid:[{inode}]", None, time.monotonic() + wait
    while True:
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") == link:
                    pids.append(int(pid))
            except OSError:
                pass
        first = len(pids) if first is None else first
        if not pids:
            return first
        if time.monotonic() > limit:
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        time.sleep(0.01)


def scrub(uid, dirs=SHARED_DIRS):
    """Deletes everything owned by @p uid under @p dirs, where the world may write (a folder the
    uid owns goes whole; only world-writable folders are searched: nowhere else could it have
    made an entry); never follows a link. Returns the paths deleted."""
    removed = []
    for top in dirs:
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            keep = []
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_uid == uid:
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        try:
                            os.unlink(path)
                        except OSError:
                            pass
                    removed.append(path)
                elif stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
                    keep.append(name)
            dirnames[:] = keep
    return removed


def take_kernel(build_dir, rel, dest):
    """Copies the kernel ELF at @p build_dir/@p rel to @p dest, reaching it without following a
    symbolic link at any step (the build folder is the sandbox's); returns @p dest, or None with
    no such regular file (or one too big to be a kernel)."""
    fd = os.open(build_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        parts = rel.split("/")
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        elf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    try:
        st = os.fstat(elf)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KERNEL:
            return None
        with os.fdopen(os.dup(elf), "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        return dest
    finally:
        os.close(elf)


def staging_dir():
    """A new folder for a submission's tree that the sandbox's uid can walk (root's, mode 0711,
    in the system's temporary folder): the batch's own work folder may sit below one it cannot
    enter (a home folder of mode 0700)."""
    path = tempfile.mkdtemp(prefix="pagoda-build-")
    os.chmod(path, 0o711)
    return path
