"""scripts/supervise: restarts its child whenever it exits, stops it when told to, and builds
the supervised Procfile scripts/run hands to honcho. Real processes and signals, no database."""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPERVISE = ROOT / "scripts" / "supervise"

# The child: appends its pid to argv[1], then sleeps argv[2] seconds and exits 0. A stop
# signal is written to argv[1] + ".signal" (then it exits 0), or ignored with argv[3] "ignore".
CHILD = """
import os, signal, sys, time
pids, seconds, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def record(signum, frame):
    with open(pids + ".signal", "w") as f:
        f.write(str(signum))
    sys.exit(0)

for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, signal.SIG_IGN if mode == "ignore" else record)
with open(pids, "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(seconds)
"""


def load_supervise():
    loader = importlib.machinery.SourceFileLoader("supervise", str(SUPERVISE))
    spec = importlib.util.spec_from_loader("supervise", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def parent_of(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Supervised:
    """One scripts/supervise process running CHILD; its pids and stderr are in tmp_path."""

    def __init__(self, tmp_path: Path, seconds: float, mode: str = "record", *options: str):
        self.pidfile = tmp_path / "pids"
        self.errfile = tmp_path / "stderr"
        child = [sys.executable, "-c", CHILD, str(self.pidfile), str(seconds), mode]
        with self.errfile.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SUPERVISE), "--name", "child", *options, "--", *child],
                stderr=err,
            )

    def pids(self) -> list[int]:
        if not self.pidfile.exists():
            return []
        return [int(line) for line in self.pidfile.read_text().split()]

    def wait_for_child(self, number: int) -> int:
        """The pid of the number-th child started (1 = the first)."""
        wait_for(lambda: len(self.pids()) >= number, what=f"child #{number}")
        return self.pids()[number - 1]

    def stderr(self) -> str:
        return self.errfile.read_text()

    def kill(self) -> None:
        """Cleanup after a failed test: nothing outlives it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def supervised(tmp_path):
    started = []

    def start(seconds: float, mode: str = "record", *options: str) -> Supervised:
        started.append(Supervised(tmp_path, seconds, mode, *options))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def test_the_script_is_an_executable_python3_script():
    assert os.access(SUPERVISE, os.X_OK)
    assert SUPERVISE.read_text().startswith("#!/usr/bin/env python3\n")


def test_a_killed_child_is_restarted_and_sigterm_stops_both(supervised):
    sup = supervised(600)
    first = sup.wait_for_child(1)
    assert os.getpgid(first) == first != os.getpgid(sup.proc.pid)  # in its own process group

    os.kill(first, signal.SIGKILL)
    second = sup.wait_for_child(2)

    assert second != first and not alive(first)
    assert sup.proc.poll() is None and parent_of(second) == sup.proc.pid  # the same supervisor
    assert "supervise[child]: killed by SIGKILL after" in sup.stderr()
    assert "restarting in 1 s" in sup.stderr()

    sup.proc.send_signal(signal.SIGTERM)
    sup.proc.wait(timeout=5)
    assert not alive(second) and group_empty(second)
    assert (sup.pidfile.parent / "pids.signal").read_text() == str(int(signal.SIGTERM))


def test_a_child_that_exits_0_on_its_own_is_restarted_with_a_growing_back_off(supervised):
    sup = supervised(0)  # exits 0 at once, every time
    # Three runs, so back-offs of 1 s and 2 s, and the third run has ended: 4 s to come.
    lines = wait_for(lambda: sup.stderr().splitlines()[2:] and sup.stderr().splitlines())
    assert sup.proc.poll() is None and len(sup.pids()) == 3
    assert "exited with code 0" in lines[0] and lines[0].endswith("restarting in 1 s")
    assert [line.rsplit(" in ", 1)[1] for line in lines] == ["1 s", "2 s", "4 s"]

    sup.proc.send_signal(signal.SIGTERM)  # during a back-off: no child to wait for
    assert sup.proc.wait(timeout=5) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_each_stop_signal_is_forwarded_to_the_child(supervised, signum):
    sup = supervised(600)
    child = sup.wait_for_child(1)
    sup.proc.send_signal(signum)
    assert sup.proc.wait(timeout=5) == 0  # the child's own exit code after its handler
    assert (sup.pidfile.parent / "pids.signal").read_text() == str(int(signum))
    assert not alive(child)
    assert sup.pids() == [child]  # not restarted


def test_a_child_that_ignores_the_stop_signal_is_killed_after_the_stop_timeout(supervised):
    sup = supervised(600, "ignore", "--stop-timeout", "1")
    child = sup.wait_for_child(1)
    started = time.monotonic()
    sup.proc.send_signal(signal.SIGTERM)
    # A bound below the 20 s default stop timeout: a supervisor ignoring --stop-timeout
    # would still be waiting. Its own line says which timeout it applied.
    assert sup.proc.wait(timeout=15) == 128 + signal.SIGKILL
    assert time.monotonic() - started > 0.9  # it did wait the stop timeout first
    assert not alive(child) and group_empty(child)
    assert "still running 1 s after SIGTERM: SIGKILL" in sup.stderr()


def test_a_command_that_cannot_start_is_retried_not_fatal(supervised, tmp_path):
    missing = tmp_path / "no-such-program"
    proc = subprocess.Popen(
        [sys.executable, str(SUPERVISE), "--", str(missing)], stderr=subprocess.PIPE, text=True
    )
    try:
        first = proc.stderr.readline()
        assert "supervise[no-such-program]: could not start" in first
        assert first.rstrip().endswith("restarting in 1 s")
        assert "restarting in 2 s" in proc.stderr.readline()  # tried again, still supervising
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def test_the_supervised_procfile_wraps_each_process_started_in_order():
    supervise = load_supervise()
    procfile = (ROOT / "Procfile").read_text()
    names = ["web", "worker", "webhooks", "beat", "simulator"]

    lines = supervise.supervised_procfile(procfile, names, "/x/scripts/supervise", 4).splitlines()

    originals = dict(line.split(": ", 1) for line in procfile.splitlines() if ": " in line)
    assert [line.split(":", 1)[0] for line in lines] == names
    for name, line in zip(names, lines, strict=True):
        prefix = f"{name}: exec /x/scripts/supervise --stop-timeout 4 --name {name} -- "
        assert line == prefix + originals[name]


def test_the_supervised_procfile_refuses_an_unknown_process():
    supervise = load_supervise()
    with pytest.raises(ValueError, match="nope"):
        supervise.supervised_procfile("web: gunicorn x\n", ["web", "nope"], "supervise", 4)


def test_the_supervised_procfile_from_the_command_line():
    out = subprocess.run(
        [sys.executable, str(SUPERVISE), "--procfile", str(ROOT / "Procfile"), "web", "beat"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out.splitlines()[0].startswith(f"web: exec {SUPERVISE} --stop-timeout 20 --name web")
    assert out.splitlines()[1].startswith("beat: exec ")
    assert "release" not in out
