"""A real one-node SLURM cluster on localhost, for the SLURM executor's tests.

Debian's ``slurm-wlm`` and ``munge`` packages give ``slurmctld``, ``slurmd``,
``sbatch``/``squeue``/``sinfo`` and ``munged``. :class:`LocalSlurm` runs a private copy
of each daemon, in the foreground as children of the test process, with everything
they write under one temporary directory:

- its own ``munged`` (own key, socket, pid and log files), so a system munged — or
  another engineer's test cluster — is never touched; ``slurm.conf`` points at that
  socket with ``AuthInfo=socket=...``; ``cred_expire=10`` because a requeued job may
  not restart before its old credential expires (default 120 s);
- ``slurmctld`` and ``slurmd`` on two free TCP ports, with a fresh state directory
  (job ids start at 1 every time) and ``-f <conf>``; one node (this host's CPUs and
  90% of its memory), one partition ``debug``; ``proctrack/linuxproc`` and
  ``task/none``, so no cgroups are needed (containers have none);
- clients find the cluster through ``SLURM_CONF`` (:meth:`LocalSlurm.env`).

No accounting daemon: ``sacct`` does not work here; job state comes from ``squeue``.
The daemons run as root (``SlurmUser=root``); the Debian packages and a root shell
are what CI's fresh machines have. Daemons are killed by pid at :meth:`stop`; the
pids are also written to ``<dir>/pids`` so a crashed session's leftovers can be
found (:func:`kill_stale`). ``python tests/_slurm_cluster.py`` starts one and
prints the ``export SLURM_CONF=...`` line, for poking at it by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

__all__ = ["LocalSlurm", "missing_binaries", "kill_stale"]

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "scontrol")
STALE_ROOT = Path(tempfile.gettempdir()) / "bench-slurm-test"

CONF = """\
ClusterName={cluster}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SrunPortRange={srun_ports}
AuthType=auth/munge
AuthInfo=socket={munge_socket},cred_expire=10
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=600
InactiveLimit=0
Waittime=0
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def _free_ports(n: int) -> list[int]:
    """n distinct ports the kernel says are free now (bound then released)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _alive(pid: int, name: str) -> bool:
    """pid is running and is the daemon we started (pids get reused)."""
    try:
        return name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def kill_stale() -> None:
    """Kill daemons a crashed earlier session left behind (found by their pid files).

    Only clusters whose owning process is gone: a concurrent session's cluster stays up.
    """
    for pids in STALE_ROOT.glob("*/pids"):
        owner, *daemons = pids.read_text().splitlines()
        if Path(f"/proc/{owner.split()[1]}").exists():
            continue
        for line in daemons:
            pid, name = line.split(maxsplit=1)
            if _alive(int(pid), name):
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(pids.parent, ignore_errors=True)


class LocalSlurm:
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager)."""

    def __init__(self, cpus: int | None = None, mem_mb: int | None = None):
        STALE_ROOT.mkdir(parents=True, exist_ok=True)
        # Short path: the munge socket path must fit in sockaddr_un (108 bytes).
        self.dir = Path(tempfile.mkdtemp(prefix="c", dir=STALE_ROOT))
        self.dir.chmod(0o755)
        self.cpus = cpus or os.cpu_count() or 1
        self.mem_mb = mem_mb or int(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9
        )
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge" / "munge.socket"
        self.procs: list[tuple[subprocess.Popen, str]] = []
        (self.dir / "pids").write_text(f"owner {os.getpid()}\n")

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.stdout", "w")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )
        self.procs.append((proc, name))
        with open(self.dir / "pids", "a") as f:
            f.write(f"{proc.pid} {name}\n")
        return proc

    def _start_munge(self) -> None:
        mdir = self.munge_socket.parent
        mdir.mkdir(mode=0o700)
        key = mdir / "munge.key"
        if shutil.which("mungekey"):
            subprocess.run(
                ["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True
            )
        else:  # munge < 0.5.14 has no mungekey
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn(
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={mdir / 'munged.pid'}",
                f"--log-file={mdir / 'munged.log'}",
                f"--seed-file={mdir / 'munged.seed'}",
            ],
            "munged",
        )
        self._wait(
            lambda: self.munge_socket.exists(),
            10,
            "munged did not create its socket",
            mdir / "munged.log",
        )

    def _wait(self, ready, timeout: float, what: str, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            for proc, name in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}: {self._tail(self.dir / f'{name}.stdout', log)}"
                    )
            time.sleep(0.2)
        raise RuntimeError(f"{what} within {timeout:.0f}s: {self._tail(log)}")

    @staticmethod
    def _tail(*logs: Path | None) -> str:
        text = ""
        for log in logs:
            if log is not None and log.exists():
                text += " | ".join(log.read_text(errors="replace").splitlines()[-6:])
        return text or "(no log)"

    def _node_idle(self) -> bool:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True
        )
        return (
            out.returncode == 0
            and out.stdout.strip() in ("idle", "idle*")
            and "*" not in out.stdout
        )

    def start(self, timeout: float = 60) -> LocalSlurm:
        ctld, slurmd, srun_lo = _free_ports(3)
        node = socket.gethostname()
        (self.dir / "state").mkdir()
        (self.dir / "spool").mkdir()
        self.conf.write_text(
            CONF.format(
                cluster=f"bench{os.getpid()}",
                host=node,
                node=node,
                ctld_port=ctld,
                slurmd_port=slurmd,
                srun_ports=f"{max(srun_lo, 20000)}-{max(srun_lo, 20000) + 50}",
                munge_socket=self.munge_socket,
                dir=self.dir,
                cpus=self.cpus,
                mem_mb=self.mem_mb,
            )
        )
        try:
            self._start_munge()
            # -i: ignore saved state (there is none; a reused dir must not resurrect jobs)
            self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
            self._spawn(["slurmd", "-D", "-N", node, "-f", str(self.conf)], "slurmd")
            self._wait(
                self._node_idle, timeout, "the node did not become idle", self.dir / "slurmd.log"
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Job processes first (batch script, srun, the task, slurmstepd): they are not our
        # children, and a job step whose slurmd is gone waits forever.
        for pid in _job_processes(self.conf):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # a throwaway cluster: no need for a graceful shutdown
        for proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _job_processes(conf: Path) -> list[int]:
    """pids of this cluster's job processes: slurmstepd, or anything in a job of this conf."""
    mine, pids = f"SLURM_CONF={conf}\0".encode(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes() + b"\0"
            if mine in environ and (
                b"SLURM_JOB_ID=" in environ or b"slurmstepd" in (proc / "cmdline").read_bytes()
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


if __name__ == "__main__":
    cluster = LocalSlurm().start()
    print(f"export SLURM_CONF={cluster.conf}   # Ctrl-C stops the cluster")
    try:
        signal.pause()
    except KeyboardInterrupt:
        cluster.stop()
