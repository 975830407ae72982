"""N uvicorn processes on one port, each accepting on a listening socket of its own (SO_REUSEPORT).

    python -m pms.launch [--workers N] [--host H] [--port P] [uvicorn options...]

`--workers` defaults to `$WEB_CONCURRENCY`, else the number of cores this process may run on.
Every other option goes to uvicorn unchanged (`scripts/serve`, the Dockerfile and compose pass
the production flags). With one worker this is plain `uvicorn --host H --port P ...`.

Why not uvicorn's own `--workers`: its processes accept from one shared socket, and whichever
wakes first takes every queued connection (asyncio accepts up to the backlog per wake-up).
Measured on this 2-core machine, 500 authenticated sockets of the real app opened at once (a
reconnect storm after a restart) landed 112/388, 127/373, 134/366 on two processes; opened
one by one, 237/263 and 250/250. Here the kernel hashes each connection to one of the N
sockets: 250/250-like for both patterns (docs/deployment.md has the runs and the command).

The sockets are bound and held by this parent, so a process that dies is started again on the
same socket and nothing queued for it is lost. SIGTERM and SIGINT go to every process (each
drains on SIGTERM, see pms/health.py); the parent exits when they all have: 0 if each stopped
cleanly (exit 0, or the signal it was sent), else the first other status (a signal death
counts as 128 + signal). A process that could not start (uvicorn's exit status 3: the app's
import or settings are broken) stops them all rather than being restarted in a loop; any other
death is restarted, at most once a second per socket.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

POLL_SECONDS = 0.2
STARTUP_FAILURE = 3  # uvicorn's exit status when the app cannot be imported or the socket used
RESTART_SECONDS = 1.0  # a process is started again at most this often per socket
BACKLOG = 2048  # uvicorn's default


def cores() -> int:
    """The cores this process may run on (a container's cpuset included), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY") or cores())


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port that other SO_REUSEPORT sockets of this user may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def uvicorn_env() -> dict[str, str]:
    """This environment without WEB_CONCURRENCY: uvicorn reads it as `--workers` and would start
    a supervisor of its own in each process (or fail on an empty value)."""
    return {name: value for name, value in os.environ.items() if name != "WEB_CONCURRENCY"}


def uvicorn_on(sock: socket.socket, options: list[str]) -> subprocess.Popen[bytes]:
    fd = sock.fileno()
    args = [sys.executable, "-m", "uvicorn", "--fd", str(fd), *options]
    return subprocess.Popen(args, pass_fds=(fd,), env=uvicorn_env())


def exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def run(host: str, port: int, workers: int, options: list[str]) -> int:
    if workers == 1:
        args = [sys.executable, "-m", "uvicorn", "--host", host, "--port", str(port), *options]
        os.execve(sys.executable, args, uvicorn_env())
    sockets = [reuseport_socket(host, port) for _ in range(workers)]
    processes: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopping.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    # Before the first process starts: a signal in between must not orphan them.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    processes.extend(uvicorn_on(sock, options) for sock in sockets)
    started = [time.monotonic()] * workers
    print(f"[pms.launch] {workers} uvicorn processes on {host}:{port} (SO_REUSEPORT), pids", end=" ", flush=True)
    print(" ".join(str(process.pid) for process in processes), flush=True)
    if stopping:  # signalled while they were being started
        forward(stopping[0], None)
    failed = 0  # the first exit status that is not a clean stop
    clean = (0, 128 + signal.SIGTERM, 128 + signal.SIGINT)
    while True:
        for index, process in enumerate(processes):
            code = process.poll()
            if code is None:
                continue
            if stopping:
                if exit_status(code) not in clean and not failed:
                    failed = exit_status(code)
            elif code == STARTUP_FAILURE:
                print(f"[pms.launch] process {process.pid} could not start (exit {code}); stopping", flush=True)
                failed = code
                forward(signal.SIGTERM, None)
            elif time.monotonic() - started[index] >= RESTART_SECONDS:  # else wait: no hot loop
                print(f"[pms.launch] process {process.pid} exited with {code}; starting another", flush=True)
                processes[index] = uvicorn_on(sockets[index], options)
                started[index] = time.monotonic()
        if stopping and all(process.poll() is not None for process in processes):
            return failed
        time.sleep(POLL_SECONDS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, options = parser.parse_known_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return run(args.host, args.port, args.workers, options)


if __name__ == "__main__":
    sys.exit(main())
