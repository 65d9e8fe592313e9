"""Background services of the local stack: pid files, port checks, waiting until a port answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lakehouse.scripts.errors import PrerequisiteError, StackError


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_free_port(port: int, what: str, env_var: str) -> None:
    """Fail with one line naming the fix when another process already listens on ``port``."""
    if port_open(port):
        raise PrerequisiteError(
            f"port {port} needed by {what} is in use by another process: stop that process, "
            f"or choose another port with `export {env_var}=<free port>`"
        )


JDK_FIX = "install a Java 17 JDK (Debian: `apt-get install openjdk-17-jdk-headless`)"


def require_command(command: str, fix: str) -> str:
    """Path of an executable on PATH, or a PrerequisiteError naming how to install it."""
    found = shutil.which(command)
    if not found:
        raise PrerequisiteError(f"`{command}` was not found on PATH: {fix}")
    return found


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    return True


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None = None) -> None:
    """Poll ``check`` until it is true; on timeout raise StackError with the tail of the service log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = ""
    if log_file and log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
    raise StackError(f"{what} did not come up within {timeout:.0f}s (log: {log_file})\n{tail}")


def answers(url: str, process: Service, what: str) -> bool:
    """True when a GET of ``url`` gets 200; StackError when ``process``, which should answer it, has exited."""
    if process.pid() is None:
        raise StackError(f"{what} exited during start-up; see {process.log_file}")
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class Service:
    """A long-running process of the local stack, tracked by a pid file under the state folder."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        """Where the running process's pid is recorded."""
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """stdout and stderr of the process."""
        return self.state_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """Pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start ``argv`` detached from this process (it outlives the CLI), logging to ``log_file``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the process group, SIGKILL it after ``timeout``; True if something was running."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
