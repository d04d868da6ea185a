"""Every rendered server argv parses with SGLang 0.5.23's own parser, with exact flag names,
and the flag list the spec validates against is the real parser's."""

from __future__ import annotations

import json
import subprocess
from functools import cache

import pytest

from infra.planning import flags
from infra.planning.group import DIST_TIMEOUT_SECS
from tests.conformance.conftest import ROUTER_PYTHON, SGLANG_PYTHON, plan_json, require, run_json
from tests.conftest import ROOT, STACKS


def _server_argvs(stack: str) -> list[tuple[str, list[str]]]:
    out = []
    for node in plan_json(stack)["nodes"]:
        if node["role"] in ("server", "prefill", "decode"):  # PD pools: infra/planning/pd.py
            out += [(node["name"], p["argv"]) for p in node["processes"]]
    return out


@cache
def _parsed_all() -> dict[str, list[dict]]:
    """One parser process for every stack (importing SGLang takes seconds)."""
    batch = {s: [a[3:] for _, a in _server_argvs(s)] for s in STACKS}
    flat = [a for s in STACKS for a in batch[s]]
    results = iter(run_json(SGLANG_PYTHON, "check_server_argv.py", flat))
    return {s: [next(results) for _ in batch[s]] for s in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_server_argvs_parse(stack: str) -> None:
    argvs = _server_argvs(stack)
    assert argvs and all(a[:3] == ["python3", "-m", "sglang.launch_server"] for _, a in argvs)
    results = _parsed_all()[stack]
    spec = plan_json(stack)["layout"]
    pools = plan_json(stack).get("pd", {}).get("pools", {})
    for (node, argv), res in zip(argvs, results, strict=True):
        assert res["ok"], f"{stack}/{node}: {res['error']}"
        args = res["args"]
        role = node.split("-", 1)[0]
        assert args["tp_size"] == (pools[role]["tp_size"] if role in pools else spec["tp_size"])
        assert (args["pp_size"] or 1) == spec["pp_size"]
        assert (args["ep_size"] or 1) == spec["ep_size"]
        if "--nnodes" in argv:
            assert args["nnodes"] == spec["nodes_per_server"]
            assert args["dist_init_addr"].endswith(":20000")
            assert args["dist_timeout"] == DIST_TIMEOUT_SECS  # group restart: bounded waits


def test_parser_really_rejects_abbreviations() -> None:
    res = run_json(
        SGLANG_PYTHON,
        "check_server_argv.py",
        [
            ["--model-path", "m", "--tp", "2"],
            ["--model-path", "m", "--enable-ep"],
            ["--model-path", "m", "--tp-size", "2"],
        ],
    )
    assert [r["ok"] for r in res] == [False, False, True]


def test_flag_data_matches_the_real_parsers() -> None:
    """infra/planning/data/sglang_flags.json is exactly what tools/dump_flags.py reads today."""
    data = json.loads(flags.DATA_FILE.read_text())
    for python, part in ((SGLANG_PYTHON, "server"), (ROUTER_PYTHON, "router")):
        proc = subprocess.run(
            [str(require(python)), str(ROOT / "tools" / "dump_flags.py"), "--only", part],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        live = json.loads(proc.stdout)
        # server: option strings, their argparse dests and choices; router: option strings.
        assert set(live) == {k for k in data if k == part or k.startswith(part + "_")}
        for key, value in live.items():
            assert value == data[key], f"{key} changed: rerun tools/dump_flags.py"
    assert data["sglang"] == flags.SGLANG_VERSION and data["sglang-router"] == flags.ROUTER_VERSION
