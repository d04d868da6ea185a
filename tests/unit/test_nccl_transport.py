"""``userdata/sglang-nccl-transport``: the word NCCL's log proves, run as the node runs it.

The script runs as a subprocess (``python3 SCRIPT LOGFILE``), exactly as a node's scripts call
it. The four ``tests/fixtures/nccl/nccl-*.log`` are real NCCL 2.28.9 logs of the silent socket
fallback captured on a GPU; ``tests/fixtures/nccl/constructed/`` holds EFA, libfabric-tcp, IB and
trap logs constructed from NCCL's and aws-ofi-nccl's format strings (no EFA hardware exists
here; see that folder's ``make_logs.py`` and ``../README.md``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.nccl.constructed import make_logs

SCRIPT = ROOT / "userdata" / "sglang-nccl-transport"
FIXTURES = ROOT / "tests" / "fixtures" / "nccl"
CONSTRUCTED = FIXTURES / "constructed"
REAL = sorted(FIXTURES.glob("nccl-*.log"))
SGLANG_START = make_logs.SGLANG_START
RUN_SCRIPT_START = "server 0: starting rank 0 of 2: python3 -m sglang.launch_server --tp-size 16"


def classify(path: Path | str, *args: str, stdin: str | None = None) -> tuple[str, int, str]:
    """(stdout word, exit status, stderr) of the real script."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, str(path)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.stdout.count("\n") == 1, f"not exactly one word: {proc.stdout!r}"
    return proc.stdout.strip(), proc.returncode, proc.stderr


def text(name: str) -> str:
    return (CONSTRUCTED / name).read_text(encoding="utf-8")


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server-0.log"
    path.write_text(body, encoding="utf-8")
    return path


def test_four_real_fallback_logs_are_in_the_repo() -> None:
    assert [p.name for p in REAL] == [
        "nccl-default.log",
        "nccl-ofi-broken.log",
        "nccl-ofi-missing-ifname.log",
        "nccl-ofi-missing.log",
    ]
    assert "2.28.9" in (FIXTURES / "README.md").read_text()


@pytest.mark.parametrize("log", REAL, ids=[p.name for p in REAL])
def test_real_fallback_logs_are_socket(log: Path) -> None:
    word, rc, _ = classify(log)
    assert (word, rc) == ("socket", 1)


def test_the_old_first_match_grep_was_wrong_on_these_logs() -> None:
    """Today's check (first `NET/(OFI|Socket|IB)` match) reads the fallbacks as IB and the
    Initializing-then-Socket trap as OFI (EFA): the reason for the new script."""
    import re

    first = re.compile(r"NET/(OFI|Socket|IB)")
    m = first.search((FIXTURES / "nccl-ofi-broken.log").read_text())
    assert m is not None and m.group(0) == "NET/IB"
    m = first.search(text("trap-ofi-initializing-then-socket.log"))
    assert m is not None and m.group(0) == "NET/OFI"


EXPECTED = {
    "efa-ofi-1.17-p5.log": ("efa", 0),
    "efa-ofi-1.9-p4d.log": ("efa", 0),
    "libfabric-tcp.log": ("libfabric-other", 1),
    "ib.log": ("ib", 1),
    "trap-ofi-initializing-then-socket.log": ("socket", 1),
    "trap-efa-selected-then-socket.log": ("socket", 1),
}


def test_constructed_logs_are_what_the_generator_writes() -> None:
    rendered = make_logs.render()
    assert set(rendered) == set(EXPECTED)
    for name, body in rendered.items():
        assert text(name) == body, f"{name} differs from make_logs.py: rerun it"


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_constructed_logs(name: str, expected: tuple[str, int]) -> None:
    word, rc, _ = classify(CONSTRUCTED / name)
    assert (word, rc) == expected


def test_why_names_the_deciding_rank_and_lines() -> None:
    _, _, why = classify(CONSTRUCTED / "libfabric-tcp.log", "--why")
    assert "8 rank(s): 8 libfabric-other" in why
    assert "Using network Libfabric; NET/OFI provider tcp;ofi_rxm" in why


def test_one_socket_rank_among_efa_ranks_makes_the_server_socket(tmp_path: Path) -> None:
    """Worst rank wins: a ninth process (its own pid) fell back to sockets."""
    lines = make_logs.trap_initializing_then_socket(0, 1300)
    body = text("efa-ofi-1.17-p5.log") + "".join(
        f"{make_logs.HOST}:1300:1300 [0] NCCL INFO {m}\n" for m in lines
    )
    word, rc, why = classify(write(tmp_path, body), "--why")
    assert (word, rc) == ("socket", 1)
    assert "9 rank(s): 1 socket, 8 efa" in why and "1300" in why


def test_a_later_socket_init_in_an_efa_rank_counts(tmp_path: Path) -> None:
    """Every NCCL init of a rank counts, not only its first."""
    body = text("efa-ofi-1.17-p5.log") + f"{make_logs.HOST}:1203:1203 [2] NCCL INFO Using network Socket\n"
    assert classify(write(tmp_path, body))[:2] == ("socket", 1)


@pytest.mark.parametrize("marker", [SGLANG_START, RUN_SCRIPT_START], ids=["sglang", "run-script"])
def test_only_the_latest_start_counts(tmp_path: Path, marker: str) -> None:
    """A server log appended across restarts: socket, then a restart onto EFA, is efa; the
    reverse is socket."""
    socket = (FIXTURES / "nccl-ofi-missing.log").read_text()
    efa = text("efa-ofi-1.17-p5.log")
    assert classify(write(tmp_path, f"{socket}{marker}\n{efa}"))[:2] == ("efa", 0)
    assert classify(write(tmp_path, f"{efa}{marker}\n{socket}"))[:2] == ("socket", 1)


def test_a_reused_pid_is_a_new_process(tmp_path: Path) -> None:
    """Without a start line, a pid that prints NCCL's banner again is a new process: its old
    EFA lines do not vouch for the new one."""
    efa = text("efa-ofi-1.9-p4d.log").splitlines()[1:]
    again = [
        "ip-10-0-1-10:1201:1201 [0] NCCL INFO NCCL version 2.18.5+cuda12.2",
        "ip-10-0-1-10:1201:1201 [0] NCCL INFO Using network Socket",
    ]
    assert classify(write(tmp_path, "\n".join(efa + again) + "\n"))[:2] == ("socket", 1)


def test_nccl_net_ofi_renames_the_plugin(tmp_path: Path) -> None:
    """With NCCL_NET=OFI aws-ofi-nccl registers itself as "OFI" (nvidia_plugin_name_fixup)."""
    body = "h:7:7 [0] NCCL INFO NET/OFI Selected provider is efa, fabric is efa-direct (found 32 nics)\n"
    body += "h:7:7 [0] NCCL INFO Using network OFI\n"
    assert classify(write(tmp_path, body))[:2] == ("efa", 0)


def test_libfabric_without_a_provider_line_is_unknown(tmp_path: Path) -> None:
    body = "h:7:7 [0] NCCL INFO NET/OFI Initializing aws-ofi-nccl 1.17.2\nh:7:7 [0] NCCL INFO Using network Libfabric\n"
    assert classify(write(tmp_path, body))[:2] == ("unknown", 1)


def test_rank_count(tmp_path: Path) -> None:
    """--ranks N: efa needs N ranks; socket is final at the first rank."""
    efa = CONSTRUCTED / "efa-ofi-1.17-p5.log"
    word, rc, why = classify(efa, "--ranks", "9", "--why")
    assert (word, rc) == ("unknown", 1) and "only 8 of 9" in why
    assert classify(efa, "--ranks", "8")[:2] == ("efa", 0)
    assert classify(CONSTRUCTED / "trap-efa-selected-then-socket.log", "--ranks", "99")[0] == "socket"


def test_prefixes_before_nccls_own_stay_readable(tmp_path: Path) -> None:
    """`docker logs -t` timestamps and NCCL_DEBUG_TIMESTAMP_LEVELS put text before the host."""
    body = "".join(
        f"2026-11-21T09:00:00.000000001Z [2026-11-21 09:00:00] {line}\n"
        for line in text("ib.log").splitlines()
    )
    assert classify(write(tmp_path, body))[:2] == ("ib", 1)


def test_nothing_to_decide_on(tmp_path: Path) -> None:
    assert classify(write(tmp_path, "sglang starting\n"))[:2] == ("unknown", 1)
    assert classify(tmp_path / "missing.log")[:2] == ("unknown", 2)
    assert classify("-", stdin=text("efa-ofi-1.17-p5.log"))[:2] == ("efa", 0)


def test_script_is_python_3_10_syntax() -> None:
    """The DLAMI host runs Python 3.10: the script must parse as 3.10 (no 3.11+ syntax)."""
    ast.parse(SCRIPT.read_text(encoding="utf-8"), feature_version=(3, 10))
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
