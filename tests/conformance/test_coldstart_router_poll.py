"""The cold-start model's ``router`` phase is the router's poll of a starting worker: its constant
``router_ready_secs`` must be what each real gateway's parser resolves
``--worker-startup-check-interval`` to for the argv prod-tp16 renders (the flag is not set, so
the default applies): smg 1.13.0 (``.tools/smg-venv``, the default gateway) and sglang-router
0.3.2 (``.tools/router-venv``)."""

from __future__ import annotations

import pytest

from infra.planning.coldstart import constants
from tests.conformance.conftest import ROUTER_PYTHON, gateway_plan_json, run_json
from tests.conformance.gateway_harness import SMG_PYTHON


@pytest.mark.parametrize("gateway", ["smg", "sglang-router"])
def test_router_ready_is_the_real_startup_check_interval(gateway: str) -> None:
    doc = gateway_plan_json("prod-tp16", gateway)
    (router,) = [n for n in doc["nodes"] if n["role"] == "router"]
    argv = router["processes"][0]["argv"]
    assert "--worker-startup-check-interval" not in argv
    if gateway == "smg":
        assert argv[:2] == ["smg", "launch"]
        (res,) = run_json(SMG_PYTHON, "check_smg_argv.py", [argv[2:]])
    else:
        assert argv[:3] == ["python3", "-m", "sglang_router.launch_router"]
        (res,) = run_json(ROUTER_PYTHON, "check_router_argv.py", [argv[3:]])
    assert res["ok"], res["error"]
    c = constants()["router_ready_secs"]
    assert res["args"]["worker_startup_check_interval"] == c.value
    assert "--worker-startup-check-interval" in c.source and not c.assumption
