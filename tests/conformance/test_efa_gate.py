"""The image's build gate (`docker/check_efa_stack.py`) against real shared libraries.

No Docker daemon and no EFA installer here, so the gate runs on stand-ins built with the real
toolchain (gcc, GNU ld version scripts, glibc's ldd and dynamic loader) in the same shape as the
real stack: a plugin `libnccl-net-ofi.so` linking `libfabric.so.1`, which needs a versioned
symbol of `libefa.so.1`. The "old rdma-core" `libefa.so.1` exports only `EFA_1.1`; the new one
adds `EFA_1.4`, the version libfabric >= 2.3 needs (`efadv_query_qp_wqs`, rdma-core
`providers/efa/libefa.map`). That is the exact failure of a host libfabric against an image's
distro rdma-core: the gate must fail the build on it, and pass the matched stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

GATE = ROOT / "docker" / "check_efa_stack.py"


def _cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.fail("a C compiler is missing: apt-get install gcc (glibc's ldd comes with libc-bin)")
    return cc


def _build(cc: str, out: Path, source: str, *extra: str) -> None:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src), *extra], check=True)


@dataclass(frozen=True)
class Stack:
    plugin: Path
    plugin_dir: Path
    fabric_dir: Path
    efa_new: Path
    efa_old: Path
    root: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    cc = _cc()
    root = tmp_path_factory.mktemp("efa")
    efa_new, efa_old, fabric_dir, plugin_dir = (root / d for d in ("efa-new", "efa-old", "efa", "ofi"))
    for d in (efa_new, efa_old, fabric_dir, plugin_dir):
        d.mkdir()
    # libefa with and without the newer symbol version.
    (root / "new.map").write_text(
        "EFA_1.1 { global: efadv_old; local: *; };\nEFA_1.4 { global: efadv_query_qp_wqs; } EFA_1.1;\n"
    )
    (root / "old.map").write_text("EFA_1.1 { global: efadv_old; local: *; };\n")
    _build(
        cc,
        efa_new / "libefa.so.1",
        "int efadv_old(void){return 1;}\nint efadv_query_qp_wqs(void){return 4;}\n",
        "-Wl,-soname,libefa.so.1",
        f"-Wl,--version-script={root / 'new.map'}",
    )
    _build(
        cc,
        efa_old / "libefa.so.1",
        "int efadv_old(void){return 1;}\n",
        "-Wl,-soname,libefa.so.1",
        f"-Wl,--version-script={root / 'old.map'}",
    )
    # libfabric built against the new libefa: it needs efadv_query_qp_wqs@EFA_1.4.
    _build(
        cc,
        fabric_dir / "libfabric.so.1",
        "int efadv_query_qp_wqs(void);\nint fi_getinfo(void){return efadv_query_qp_wqs();}\n",
        "-Wl,-soname,libfabric.so.1",
        f"-L{efa_new}",
        "-l:libefa.so.1",
    )
    plugin = plugin_dir / "libnccl-net-ofi.so"
    _build(
        cc,
        plugin,
        "int fi_getinfo(void);\nint ncclNetPlugin_v11(void){return fi_getinfo();}\n",
        "-Wl,-soname,libnccl-net-ofi.so",
        f"-L{fabric_dir}",
        "-l:libfabric.so.1",
    )
    return Stack(plugin, plugin_dir, fabric_dir, efa_new, efa_old, root)


def gate(
    st: Stack,
    *ld_dirs: Path | str,
    plugin: Path | None = None,
    python: Path | str = sys.executable,
    torch_site: Path | None = None,
    no_torch: bool = True,
    sglang_version: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run the build gate as the Dockerfile does, with ``LD_LIBRARY_PATH`` = ``ld_dirs``
    (default: the matched stack), a fake ``torch`` on ``PYTHONPATH`` when ``torch_site`` is
    given, and the SGLang version check when ``sglang_version`` is set."""
    dirs = ld_dirs or (st.plugin_dir, st.fabric_dir, st.efa_new)
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": ":".join(str(d) for d in dirs)}
    if torch_site is not None:
        env["PYTHONPATH"] = str(torch_site)
    argv = [
        str(python),
        str(GATE),
        "--plugin",
        str(plugin or st.plugin),
        "--libfabric-dir",
        str(st.fabric_dir),
    ]
    argv += ["--no-torch"] if no_torch else []
    argv += ["--sglang-version", sglang_version] if sglang_version else []
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120)


def test_matched_stack_passes(stack: Stack) -> None:
    proc = gate(stack, stack.plugin_dir, stack.fabric_dir, stack.efa_new)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   plugin links" in proc.stdout and "ok   plugin dlopen" in proc.stdout
    assert "ok   one NCCL" in proc.stdout


def test_old_rdma_core_fails_on_the_symbol_version(stack: Stack) -> None:
    """The bind-mount failure: the installer's libfabric, an older libefa in front of it."""
    proc = gate(stack, stack.plugin_dir, stack.fabric_dir, stack.efa_old)
    assert proc.returncode == 1
    assert "FAIL plugin links" in proc.stdout and "EFA_1.4" in proc.stdout
    assert "FAIL plugin dlopen" in proc.stdout
    assert "NCCL would fall back to TCP sockets" in proc.stderr


def test_missing_libfabric_fails(stack: Stack) -> None:
    proc = gate(stack, stack.plugin_dir, stack.efa_new)
    assert proc.returncode == 1
    assert "libfabric.so.1 => not found" in proc.stdout


def test_undefined_symbol_fails(stack: Stack, tmp_path: Path) -> None:
    """A plugin calling a function no library provides (ldd -r reports it; RTLD_NOW refuses)."""
    odd = tmp_path / "ofi"
    odd.mkdir()
    _build(
        _cc(),
        odd / "libnccl-net-ofi.so",
        "int fi_missing_call(void);\nint ncclNetPlugin_v11(void){return fi_missing_call();}\n",
        f"-L{stack.fabric_dir}",
        "-l:libfabric.so.1",
    )
    proc = gate(stack, odd, stack.fabric_dir, stack.efa_new, plugin=odd / "libnccl-net-ofi.so")
    assert proc.returncode == 1
    assert "undefined symbol: fi_missing_call" in proc.stdout
    assert "FAIL plugin dlopen" in proc.stdout


def test_plugin_not_on_the_loader_path_fails(stack: Stack) -> None:
    """NCCL opens the plugin by name: a plugin that loads only by full path is not enough."""
    proc = gate(stack, stack.fabric_dir, stack.efa_new)
    assert proc.returncode == 1
    assert "ok   plugin links" in proc.stdout
    assert "FAIL plugin dlopen: dlopen(libnccl-net-ofi.so) by name" in proc.stdout


def test_trailing_colon_on_the_library_path_fails(stack: Stack) -> None:
    """``ENV LD_LIBRARY_PATH=...:${LD_LIBRARY_PATH}`` on a base without one leaves a trailing
    ``:``, which makes the loader search the working directory."""
    proc = gate(stack, stack.plugin_dir, stack.fabric_dir, stack.efa_new, "")
    assert proc.returncode == 1
    assert "FAIL library path" in proc.stdout and "empty entry" in proc.stdout


def test_distro_libfabric_in_front_fails(stack: Stack, tmp_path: Path) -> None:
    """A second libfabric (the base image's distro copy) resolving first is refused."""
    distro = tmp_path / "distro"
    distro.mkdir()
    shutil.copy(stack.fabric_dir / "libfabric.so.1", distro / "libfabric.so.1")
    proc = gate(stack, stack.plugin_dir, distro, stack.fabric_dir, stack.efa_new)
    assert proc.returncode == 1
    assert "not the EFA installer's copy" in proc.stdout


def test_second_nccl_on_the_library_path_fails(stack: Stack, tmp_path: Path) -> None:
    nccl = tmp_path / "nccl" / "lib"
    nccl.mkdir(parents=True)
    _build(_cc(), nccl / "libnccl.so.2", "int ncclGetVersion(int*v){*v=22807;return 0;}\n")
    proc = gate(stack, nccl, stack.plugin_dir, stack.fabric_dir, stack.efa_new)
    assert proc.returncode == 1
    assert "FAIL one NCCL" in proc.stdout and "libnccl.so.2" in proc.stdout


def test_missing_plugin_fails(stack: Stack) -> None:
    proc = gate(stack, stack.plugin_dir, plugin=stack.root / "nope" / "libnccl-net-ofi.so")
    assert proc.returncode == 1
    assert "does not exist" in proc.stdout


def test_wrong_sglang_version_fails(stack: Stack) -> None:
    """The version check reads the real installed distribution metadata (this venv has none)."""
    proc = gate(stack, sglang_version="0.5.23")
    assert proc.returncode == 1
    assert "FAIL sglang version" in proc.stdout


def _fake_torch(root: Path, nccl_dir: Path) -> Path:
    """A ``torch`` package whose ``lib/libtorch_cuda.so`` needs ``libnccl.so.2`` from
    ``nccl_dir`` through its RUNPATH, as the CUDA wheels of torch do."""
    site = root / "site-packages"
    lib = site / "torch" / "lib"
    lib.mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("")
    nccl_dir.mkdir(parents=True, exist_ok=True)
    _build(
        _cc(),
        nccl_dir / "libnccl.so.2",
        "int ncclGetVersion(int*v){*v=22809;return 0;}\n",
        "-Wl,-soname,libnccl.so.2",
    )
    _build(
        _cc(),
        lib / "libtorch_cuda.so",
        "int ncclGetVersion(int*);\nint f(void){int v;return ncclGetVersion(&v);}\n",
        f"-L{nccl_dir}",
        "-l:libnccl.so.2",
        f"-Wl,-rpath,{nccl_dir}",
    )
    return site


@pytest.mark.parametrize("where", ["wheel", "opt"])
def test_torch_nccl_must_be_the_wheel(stack: Stack, tmp_path: Path, where: str) -> None:
    """torch's NCCL from site-packages/nvidia reads ok; from anywhere else a WARN (the base
    image's choice, not a failure of the plugin)."""
    wheel = tmp_path / "site-packages" / "nvidia" / "nccl" / "lib"
    site = _fake_torch(tmp_path, wheel if where == "wheel" else tmp_path / "opt" / "nccl" / "lib")
    proc = gate(stack, torch_site=site, no_torch=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if where == "wheel":
        assert "ok   torch's NCCL: " + str(wheel / "libnccl.so.2") in proc.stdout
    else:
        assert "WARN torch's NCCL: " + str(tmp_path / "opt" / "nccl" / "lib" / "libnccl.so.2") in proc.stdout


def test_torch_nccl_preloaded_from_the_wheel(stack: Stack, tmp_path: Path) -> None:
    """No RUNPATH to the wheel (ldd: not found): the wheel's copy is what torch preloads."""
    wheel = tmp_path / "site-packages" / "nvidia" / "nccl" / "lib"
    site = _fake_torch(tmp_path, wheel)
    lib = site / "torch" / "lib" / "libtorch_cuda.so"
    # Rebuilt without a RUNPATH: the loader cannot find the wheel's copy on its own.
    _build(
        _cc(),
        lib,
        "int ncclGetVersion(int*);\nint f(void){int v;return ncclGetVersion(&v);}\n",
        f"-L{wheel}",
        "-l:libnccl.so.2",
    )
    assert (
        "libnccl.so.2 => not found"
        in subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    )
    proc = gate(stack, torch_site=site, no_torch=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok   torch's NCCL: {wheel / 'libnccl.so.2'} (preloaded by torch)" in proc.stdout


def test_cpu_only_torch_fails(stack: Stack, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "torch" / "lib").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("")
    proc = gate(stack, torch_site=site, no_torch=False)
    assert proc.returncode == 1
    assert "FAIL torch NCCL" in proc.stdout and "CPU-only torch" in proc.stdout


def test_sglang_version_read_from_the_real_distribution(stack: Stack) -> None:
    """With the real sglang 0.5.23 installed (the conformance venv), the version check passes."""
    from tests.conformance.conftest import SGLANG_PYTHON, require

    proc = gate(stack, python=require(SGLANG_PYTHON), sglang_version="0.5.23")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   sglang version" in proc.stdout


def test_efa_provider_dso_with_old_rdma_core_fails(stack: Stack, tmp_path: Path) -> None:
    """libfabric with its efa provider as a DSO (``libfabric/libefa-fi.so``): the plugin's own
    links resolve, but the provider libfabric dlopens at run time needs ``EFA_1.4``."""
    fabric = tmp_path / "efa"
    (fabric / "libfabric").mkdir(parents=True)
    shutil.copy(stack.fabric_dir / "libfabric.so.1", fabric / "libfabric.so.1")
    _build(
        _cc(),
        fabric / "libfabric" / "libefa-fi.so",
        "int efadv_query_qp_wqs(void);\nint fi_prov_ini(void){return efadv_query_qp_wqs();}\n",
        f"-L{stack.efa_new}",
        "-l:libefa.so.1",
    )
    st = Stack(stack.plugin, stack.plugin_dir, fabric, stack.efa_new, stack.efa_old, stack.root)
    ok = gate(st, st.plugin_dir, fabric, st.efa_new)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   efa provider DSO" in ok.stdout
    bad = gate(st, st.plugin_dir, fabric, st.efa_old)
    assert bad.returncode == 1
    assert "FAIL efa provider DSO" in bad.stdout and "EFA_1.4" in bad.stdout
