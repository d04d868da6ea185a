"""The cold-start model's ``router`` phase is the router's poll of a starting worker: its constant
``router_ready_secs`` must be what the real sglang-router 0.3.2 parser (``.tools/router-venv``)
resolves ``--worker-startup-check-interval`` to for the argv prod-tp16 renders (the flag is not
set, so the default applies)."""

from __future__ import annotations

from infra.planning.coldstart import constants
from tests.conformance.conftest import ROUTER_PYTHON, plan_json, run_json


def test_router_ready_is_the_real_startup_check_interval() -> None:
    doc = plan_json("prod-tp16")
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = next(p["argv"] for p in router["processes"] if "sglang_router.launch_router" in p["argv"])
    assert "--worker-startup-check-interval" not in argv
    (res,) = run_json(ROUTER_PYTHON, "check_router_argv.py", [argv[3:]])
    assert res["ok"], res["error"]
    c = constants()["router_ready_secs"]
    assert res["args"]["worker_startup_check_interval"] == c.value
    assert "--worker-startup-check-interval" in c.source and not c.assumption
