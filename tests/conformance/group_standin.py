"""Stand-in for one rank of a multi-node ``sglang.launch_server`` (a real server needs GPUs).

Run as ``python group_standin.py ARGV...`` with the rank's real SGLang argv (the planner's), on
loopback. It keeps the parts of SGLang 0.5.23's behaviour that group restart depends on:

- rank 0 binds a store on ``--dist-init-addr`` (like torch's TCPStore master) and waits for the
  other ``--nnodes - 1`` ranks; ranks >= 1 retry connecting to it. Either side gives up after
  ``--dist-timeout`` seconds and exits 1, as ``init_process_group`` does;
- once the world is formed, rank 0 serves ``/health`` on ``--port`` (``SGLANG_STANDIN_HOST``)
  and exchanges a tick with every rank (the collectives);
- when a peer vanishes, a survivor does not exit: it sits "in a collective" until
  ``--dist-timeout`` (the NCCL watchdog on EFA, which sees no connection reset), and rank 0
  keeps its store open and answers ``/health`` 503;
- a rank that connects to a store whose world is already formed (a stale rendezvous) is
  accepted and never answered, so a lone restart hangs.

``SGLANG_STANDIN_STATUS`` names a file where the rank writes its state (one word);
``SGLANG_STANDIN_DIE_AFTER`` makes a rank >= 1 exit 1 that many seconds after the world forms;
``SGLANG_STANDIN_EXIT`` makes a rank exit at once with that status (the run script's refusal);
``SGLANG_STANDIN_CLEAN_EXIT_ONCE`` names a file: while it exists, the next rank >= 1 to form the
world removes it and exits 0 soon after (SGLang 0.5.23's ``launch_server`` returns on a node
rank >= 1 once its schedulers end).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nnodes", type=int, required=True)
    p.add_argument("--node-rank", type=int, required=True)
    p.add_argument("--dist-init-addr", required=True)
    p.add_argument("--dist-timeout", type=int, default=1800)
    args, _ = p.parse_known_args(argv)
    return args


def _status(word: str) -> None:
    path = os.environ.get("SGLANG_STANDIN_STATUS")
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(word + "\n")
        os.replace(path + ".tmp", path)


def _stuck(timeout: int, why: str) -> None:
    _status("stuck")
    print(f"stand-in: {why}; stuck in a collective until the {timeout} s watchdog", flush=True)
    time.sleep(timeout)
    print("stand-in: watchdog timeout", flush=True)
    os._exit(1)


def _ticks(files: list[io.BufferedRWPair], rank0: bool) -> None:
    """The collectives: rank 0 sends TICK to every peer, each answers TOCK; returns when a peer
    is gone (the real NCCL on EFA would not notice; the caller then hangs like it)."""
    while True:
        try:
            for f in files:
                if rank0:
                    f.write(b"TICK\n")
                    f.flush()
                    ok = f.readline() == b"TOCK\n"
                else:
                    ok = f.readline() == b"TICK\n"
                    if ok:
                        f.write(b"TOCK\n")
                        f.flush()
                if not ok:
                    return
        except OSError:
            return
        if rank0:
            time.sleep(0.1)


def rank0(a: argparse.Namespace) -> None:
    host, port = a.dist_init_addr.rsplit(":", 1)
    store = socket.socket()
    store.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TCPStore and SGLang do
    store.bind((host, int(port)))  # fails while a live process holds it, as SGLang would
    store.listen(16)
    _status("rendezvous")
    peers: list[io.BufferedRWPair] = []
    store.settimeout(0.5)
    deadline = time.monotonic() + a.dist_timeout
    while len(peers) < a.nnodes - 1:
        if time.monotonic() > deadline:
            print("stand-in: rendezvous timeout", flush=True)
            sys.exit(1)
        try:
            conn, _ = store.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        f = conn.makefile("rwb")
        if f.readline().startswith(b"HELLO"):
            peers.append(f)
    for f in peers:
        f.write(b"READY\n")
        f.flush()
    stale: list[socket.socket] = []

    def keep_store() -> None:
        # The store stays up for the life of the process: a late rank is let in and never answered.
        store.settimeout(None)
        while True:
            stale.append(store.accept()[0])

    threading.Thread(target=keep_store, daemon=True).start()
    time.sleep(0.3)  # "loading weights"
    healthy = threading.Event()
    healthy.set()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if healthy.is_set() else 503
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = HTTPServer((os.environ.get("SGLANG_STANDIN_HOST", "127.0.0.1"), a.port), Health)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    _status("serving")
    print(f"stand-in: rank 0 serving with {len(peers)} peer(s)", flush=True)
    _ticks(peers, True)
    healthy.clear()
    _stuck(a.dist_timeout, "a peer is gone")


def peer(a: argparse.Namespace) -> None:
    host, port = a.dist_init_addr.rsplit(":", 1)
    deadline = time.monotonic() + a.dist_timeout
    _status("rendezvous")
    while True:
        try:
            s = socket.create_connection((host, int(port)), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                print("stand-in: store connect timeout", flush=True)
                sys.exit(1)
            time.sleep(0.2)
    s.sendall(f"HELLO {a.node_rank}\n".encode())
    s.settimeout(max(0.1, deadline - time.monotonic()))
    f = s.makefile("rwb")
    try:
        ready = f.readline()
    except TimeoutError:
        ready = b""
    if ready != b"READY\n":
        print("stand-in: rendezvous timeout (stale store?)", flush=True)
        sys.exit(1)
    s.settimeout(None)
    _status("serving")
    print(f"stand-in: rank {a.node_rank} in the world", flush=True)
    die_after = os.environ.get("SGLANG_STANDIN_DIE_AFTER")
    if die_after:  # a rank that crashes soon after every start (a restart storm)
        threading.Timer(float(die_after), os._exit, (1,)).start()
    clean = os.environ.get("SGLANG_STANDIN_CLEAN_EXIT_ONCE")
    if clean and os.path.exists(clean):  # SGLang on a rank >= 1 when its schedulers end: exit 0
        os.remove(clean)
        threading.Timer(0.3, os._exit, (0,)).start()
    _ticks([f], False)
    _stuck(a.dist_timeout, "rank 0 is gone")


def main() -> None:
    a = _args(sys.argv[1:])
    print(f"stand-in: rank {a.node_rank} of {a.nnodes}, store {a.dist_init_addr}", flush=True)
    refuse = os.environ.get("SGLANG_STANDIN_EXIT")
    if refuse:  # sglang-server-run's own refusal before docker run (require_efa: 78)
        print(f"stand-in: not starting, exit {refuse}", flush=True)
        sys.exit(int(refuse))
    if a.node_rank == 0:
        rank0(a)
    else:
        peer(a)


if __name__ == "__main__":
    main()
