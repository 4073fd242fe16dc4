"""Starting and supervising ROS processes where `ros2 launch` is not available (the project venv): the
environment they share and child processes whose output is read (and shown) by a thread.

Used by `dense-descriptor pipeline` and `dense-descriptor demo`. Nothing here imports rclpy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_FILE = "fastdds_large_messages.xml"


def profile_path() -> Path | None:
    """launch/fastdds_large_messages.xml of the source checkout, else of the installed ROS package."""
    repo = Path(__file__).resolve().parents[1] / "launch" / PROFILE_FILE
    if repo.is_file():
        return repo
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("dense_descriptor_ros")) / "launch" / PROFILE_FILE
        return installed if installed.is_file() else None
    except Exception:  # not installed with colcon
        return None


def pipeline_env(domain_id: int | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The children's environment: `base` (default os.environ) plus domain, profile and local discovery."""
    env = dict(os.environ if base is None else base)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if not (env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        profile = profile_path()
        if profile is not None:
            env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    env["PYTHONUNBUFFERED"] = "1"  # children's lines reach us as they are written
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    return env


@dataclass
class Child:
    """A child process whose merged output is read (and shown, prefixed) by a thread."""

    name: str
    proc: subprocess.Popen
    show: bool
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, name=f"read_{self.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self.show:
                print(f"[{self.name}] {line}", flush=True)

    def seen(self, text: str) -> str | None:
        return next((line for line in list(self.lines) if text in line), None)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (as Ctrl-C); SIGTERM if it is still running after `timeout` seconds (a SIGINT that arrived
        while Python was still importing can be swallowed), SIGKILL after another 5 s. The exit status."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
            if self.proc.poll() is not None:
                break
            if sig != signal.SIGINT:
                print(f"{self.name} still running: {sig.name}", file=sys.stderr, flush=True)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(timeout=2.0)
        return self.proc.returncode


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process `pid` in MB, from /proc (Linux); NaN when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def start_child(name: str, cmd: list[str], env: dict[str, str], show: bool) -> Child:
    # own process group: a terminal's Ctrl-C reaches only us, and we stop the children in order
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            process_group=0)
    return Child(name, proc, show)
