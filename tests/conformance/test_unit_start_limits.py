"""No restart loop of a shipped unit can hit systemd's start limit, read by a real systemd.

``Restart=always`` keeps restarting a server whose ``ExecStartPre`` fails for good (no GPU, a
node preparation that keeps failing), one ERROR line per ``RestartSec``. That is only safe while
the start rate limit (``StartLimitIntervalSec=``/``StartLimitBurst=``, 10 s and 5 by default,
systemd-system.conf(5)) can never trip: a unit that hits it ends in ``start-limit-hit`` and is
never restarted again, which would leave a $100/hour node dead for good (the group coordinator's
``systemctl restart`` is refused too). So for every shipped unit with ``Restart=``, restarts
spaced ``RestartSec`` apart must fit the burst: ``ceil(interval / RestartSec) <= burst``.

The values are the ones a real systemd 252 (Debian's ``/lib/systemd/systemd --user`` in a
private mount and PID namespace, as in ``test_unit_recovery.py``) parses from the shipped files
(as nodes receive them, comments stripped) with its own defaults: ``systemctl show`` of each
loaded unit; nothing is started. The DLAMI's systemd 249 has the same defaults.
"""

from __future__ import annotations

import math
from pathlib import Path

from infra.planning.userdata import GROUP_DROP_IN, shipped_file
from tests.conformance.usersystemd import user_manager

UNITS = {
    "sglang-server@.service": "sglang-server@0.service",
    "sglang-group@.service": "sglang-group@0.service",
    "sglang-ready@.service": "sglang-ready@0.service",
    "sglang-node.service": "sglang-node.service",
    "sglang-model.service": "sglang-model.service",
    "sglang-router.service": "sglang-router.service",
    "sglang-router-sync.service": "sglang-router-sync.service",
}
PROPS = "Restart,RestartUSec,StartLimitIntervalUSec,StartLimitBurst,LoadState"

DRIVER = r"""
for u in ${UNIT_NAMES}; do
  echo "unit ${u} $(systemctl --user show -p "${PROPS}" "${u}" | tr '\n' ' ')"
done
"""


def _usec(value: str) -> float:
    """Seconds of a ``systemctl show`` time span (``15s``, ``1min 30s``, ``100ms``, ``infinity``)."""
    if value == "infinity":
        return math.inf
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    total = 0.0
    for part in value.split():
        unit = part.lstrip("0123456789.")
        total += float(part[: len(part) - len(unit)]) * scale[unit]
    return total


def _shown(tmp_path: Path, files: dict[str, str]) -> dict[str, dict[str, str]]:
    mgr = user_manager(tmp_path)
    for name, text in files.items():
        path = mgr.units / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = mgr.run(DRIVER, timeout=120, UNIT_NAMES=" ".join(UNITS.values()), PROPS=PROPS)
    out: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("unit "):
            _, name, rest = line.split(" ", 2)
            out[name] = dict(kv.split("=", 1) for kv in rest.split())
    assert set(out) == set(UNITS.values()), proc.stdout + proc.stderr
    return out


def _violations(shown: dict[str, dict[str, str]]) -> list[str]:
    bad = []
    for name, p in shown.items():
        assert p["LoadState"] == "loaded", (name, p)
        if p["Restart"] == "no":
            continue
        interval, burst, every = (
            _usec(p["StartLimitIntervalUSec"]),
            int(p["StartLimitBurst"]),
            _usec(p["RestartUSec"]),
        )
        if interval == 0:  # StartLimitIntervalSec=0: no limit
            continue
        starts = math.ceil(interval / every) if every > 0 else math.inf
        if starts > burst:
            bad.append(
                f"{name}: Restart={p['Restart']} every {every} s makes {starts} starts in {interval} s > {burst}"
            )
    return bad


def _shipped_units() -> dict[str, str]:
    files = {name: shipped_file(name) for name in UNITS}
    files[f"sglang-server@.service.d/{Path(GROUP_DROP_IN[1]).name}"] = shipped_file(GROUP_DROP_IN[0])
    return files


def test_no_restart_loop_reaches_the_start_limit(tmp_path: Path) -> None:
    shown = _shown(tmp_path, _shipped_units())
    restarting = {n for n, p in shown.items() if p["Restart"] != "no"}
    assert {"sglang-server@0.service", "sglang-group@0.service", "sglang-router.service"} <= restarting, shown
    assert _violations(shown) == [], shown


def test_the_check_catches_a_fast_restart(tmp_path: Path) -> None:
    """Control: the same check on the group unit with ``RestartSec=1`` (what the faster tests
    use) reports it: 10 starts in the 10 s window, over the burst of 5."""
    files = _shipped_units()
    files["sglang-group@.service"] = files["sglang-group@.service"].replace("RestartSec=5", "RestartSec=1")
    assert "RestartSec=1" in files["sglang-group@.service"]
    bad = _violations(_shown(tmp_path, files))
    assert len(bad) == 1 and bad[0].startswith("sglang-group@0.service"), bad
