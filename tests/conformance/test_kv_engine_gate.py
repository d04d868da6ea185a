"""The image's build gate, check 8: the prefill/decode KV transfer engine is an EFA build bound
to the EFA installer's libfabric (``docker/check_efa_stack.py --kv-engine mooncake|nixl``).

No Docker, no PyPI wheel of Mooncake or NIXL and no EFA here, so the gate runs on stand-ins
built with the real toolchain in the shape of the real wheels: a ``mooncake`` package with an
``engine.cpython-*.so`` that links ``libfabric.so.1`` (the EFA wheels exclude libfabric from
the wheel, Mooncake ``scripts/build_wheel.sh``) and, in the EFA build, carries the string of
``transfer_engine_py.cpp``'s EFA branch; its ``dist-info`` names the distribution that owns it.
The driver's ``libcuda.so.1`` is linked but absent, as in a ``docker build``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conformance.test_efa_gate import GATE, Stack, _build, _cc, stack  # noqa: F401  (fixture)

MARKER = "Installing EFA transport as requested by protocol parameter"


def _dist(site: Path, name: str, top: str) -> None:
    info = site / f"{name}-0.3.13.post1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.3.13.post1\n"
    )
    (info / "top_level.txt").write_text(top + "\n")


def _cuda_stub(root: Path) -> Path:
    d = root / "driver"
    d.mkdir(exist_ok=True)
    _build(_cc(), d / "libcuda.so.1", "int cuInit(int f){return f;}\n", "-Wl,-soname,libcuda.so.1")
    return d


def _mooncake(site: Path, st: Stack, efa_build: bool, fabric: Path | None = None) -> None:
    pkg = site / "mooncake"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    driver = _cuda_stub(site)
    body = f'const char *msg = "{MARKER}";\n' if efa_build else 'const char *msg = "Using RDMA transport";\n'
    links = [f"-L{fabric or st.fabric_dir}", "-l:libfabric.so.1"] if efa_build else []
    _build(
        _cc(),
        pkg / "engine.cpython-312-x86_64-linux-gnu.so",
        body
        + "int cuInit(int);\nint fi_getinfo(void);\nint init(void){return cuInit(0)"
        + (" + fi_getinfo()" if efa_build else "")
        + ";}\n",
        *links,
        f"-L{driver}",
        "-l:libcuda.so.1",
    )


def kv_gate(st: Stack, engine: str, site: Path, *ld_dirs: Path) -> subprocess.CompletedProcess[str]:
    dirs = ld_dirs or (st.plugin_dir, st.fabric_dir, st.efa_new)
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": ":".join(map(str, dirs)), "PYTHONPATH": str(site)}
    argv = [sys.executable, str(GATE), "--plugin", str(st.plugin), "--libfabric-dir", str(st.fabric_dir)]
    argv += ["--no-torch", "--kv-engine", engine]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)


def test_mooncake_efa_wheel_passes(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    _dist(tmp_path, "mooncake_transfer_engine_efa_cuda13", "mooncake")
    _mooncake(tmp_path, stack, efa_build=True)
    proc = kv_gate(stack, "mooncake", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   mooncake on EFA" in proc.stdout


def test_plain_mooncake_wheel_fails(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    _dist(tmp_path, "mooncake_transfer_engine", "mooncake")
    _mooncake(tmp_path, stack, efa_build=False)
    proc = kv_gate(stack, "mooncake", tmp_path)
    assert proc.returncode == 1
    out = proc.stdout
    assert "not an EFA wheel" in out and "not an EFA build" in out and "not Mooncake's EFA build" in out


def test_plain_wheel_beside_the_efa_wheel_fails(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    _dist(tmp_path, "mooncake_transfer_engine_efa_cuda13", "mooncake")
    _dist(tmp_path, "mooncake_transfer_engine", "mooncake")
    _mooncake(tmp_path, stack, efa_build=True)
    proc = kv_gate(stack, "mooncake", tmp_path)
    assert proc.returncode == 1 and "also installs mooncake/" in proc.stdout


def test_engine_bound_to_another_libfabric_fails(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    """A libfabric bundled with the wheel or a distro copy first on the path: two libfabrics in
    one process, and whichever opens EFA first leaves the other none (Mooncake's EFA docs)."""
    other = tmp_path / "distro"
    other.mkdir()
    (other / "libfabric.so.1").write_bytes((stack.fabric_dir / "libfabric.so.1").read_bytes())
    site = tmp_path / "site"
    _dist(site, "mooncake_transfer_engine_efa_cuda13", "mooncake")
    _mooncake(site, stack, efa_build=True)
    proc = kv_gate(stack, "mooncake", site, stack.plugin_dir, other, stack.fabric_dir, stack.efa_new)
    assert proc.returncode == 1 and "not the EFA installer's copy" in proc.stdout


def test_nixl_libfabric_plugin(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    nothing = kv_gate(stack, "nixl", tmp_path)
    assert nothing.returncode == 1 and "nixl, nixl_cu13 not installed" in nothing.stdout
    _dist(tmp_path, "nixl", "nixl")
    _dist(tmp_path, "nixl_cu13", "nixl_cu13")
    missing = kv_gate(stack, "nixl", tmp_path)
    assert missing.returncode == 1 and "libplugin_LIBFABRIC.so not found" in missing.stdout
    plugins = tmp_path / ".nixl_cu13.mesonpy.libs" / "plugins"
    plugins.mkdir(parents=True)
    _build(
        _cc(),
        plugins / "libplugin_LIBFABRIC.so",
        "int fi_getinfo(void);\nint nixl_plugin_init(void){return fi_getinfo();}\n",
        f"-L{stack.fabric_dir}",
        "-l:libfabric.so.1",
    )
    proc = kv_gate(stack, "nixl", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_undefined_non_driver_symbol_still_fails(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    """Only the driver's own symbols (cu*, nvml*) are excused while libcuda is absent."""
    _dist(tmp_path, "mooncake_transfer_engine_efa_cuda13", "mooncake")
    _mooncake(tmp_path, stack, efa_build=True)
    engine = tmp_path / "mooncake" / "engine.cpython-312-x86_64-linux-gnu.so"
    _build(
        _cc(),
        engine,
        f'const char *msg = "{MARKER}";\nint fi_getinfo(void);\nint ibv_fork_init(void);\n'
        "int init(void){return fi_getinfo() + ibv_fork_init();}\n",
        f"-L{stack.fabric_dir}",
        "-l:libfabric.so.1",
    )
    proc = kv_gate(stack, "mooncake", tmp_path)
    assert proc.returncode == 1 and "undefined symbol: ibv_fork_init" in proc.stdout
