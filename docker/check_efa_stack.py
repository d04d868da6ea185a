#!/usr/bin/env python3
"""Build-time gate of the serving image: fail the build when NCCL could not use EFA.

NCCL loads aws-ofi-nccl with ``dlopen("libnccl-net-ofi.so", RTLD_NOW | RTLD_LOCAL)`` when
``NCCL_NET_PLUGIN=ofi`` is set (NCCL ``src/plugin/plugin_open.cc``). When that fails (a missing
library, or libfabric needing a libefa symbol version such as ``EFA_1.4`` that an older rdma-core
lacks) NCCL logs it at INFO and silently uses TCP sockets. This script makes the same failure
stop ``docker build`` instead. It uses only the standard library and the image's own ``ldd``.

Checks, each printed as ``ok``/``FAIL`` with the evidence:

0. ``LD_LIBRARY_PATH`` starts with the plugin's directory and has no empty entry.
1. ``ldd -r PLUGIN`` has no ``not found`` (library or symbol version) and no ``undefined symbol``.
2. The plugin's ``libfabric.so.1`` resolves inside ``--libfabric-dir`` (the installer's copy, not
   a distro libfabric that an image may also carry).
   2b. An efa provider built as a libfabric DSO (``<libfabric-dir>/libfabric/libefa-fi.so``)
   has no unresolved library or symbol version either.
3. ``dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL)`` succeeds, and so does ``dlopen`` by the bare name
   NCCL uses, which must land on PLUGIN (so the plugin directory is on ``LD_LIBRARY_PATH``).
4. No directory of ``LD_LIBRARY_PATH`` holds a ``libnccl.so*``: a second NCCL there would be
   loaded in front of torch's own (``LD_LIBRARY_PATH`` is searched before torch's RUNPATH).
5. Unless ``--no-torch``: torch's CUDA build is installed, and the log says where its
   ``libtorch_cuda.so`` resolves ``libnccl.so.2`` (``ok`` for the ``nvidia-nccl`` wheel, ``WARN``
   otherwise: that is the base image's choice, not a failure of this image).
6. With ``--sglang-version V``: the installed ``sglang`` distribution is exactly ``V`` (the
   version whose flags the project renders).
7. Report only: whether ``libgdrapi.so`` (GDRCopy, optional for aws-ofi-nccl) loads.
8. With ``--kv-engine mooncake`` (prefill/decode stacks): the ``mooncake`` package comes from
   an EFA wheel (``mooncake-transfer-engine-efa*``) and no plain ``mooncake-transfer-engine``
   is installed beside it (both own ``mooncake/``); its ``engine*.so`` resolves every library
   and symbol version (``ldd -r``; only the NVIDIA driver's own libraries may be missing at
   build time, nvidia-container-toolkit mounts them at run time), binds ``libfabric.so.1`` to
   ``--libfabric-dir`` (one libfabric for Mooncake and aws-ofi-nccl, or whichever opens the EFA
   device first leaves the other an empty provider list, Mooncake
   ``docs/source/design/transfer-engine/efa_transport.md``), and is the EFA build: it carries
   the string ``Installing EFA transport as requested by protocol parameter`` that only the
   ``USE_EFA`` build of ``mooncake-integration/transfer_engine/transfer_engine_py.cpp`` has.
   With ``--kv-engine nixl``: the ``nixl`` meta module (what SGLang imports) and ``nixl_cu13``
   are installed, and NIXL's ``libplugin_LIBFABRIC.so`` resolves and binds ``libfabric.so.1``
   to ``--libfabric-dir``.

Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

PLUGIN_NAME = "libnccl-net-ofi.so"
DEFAULT_PLUGIN = f"/opt/amazon/ofi-nccl/lib/{PLUGIN_NAME}"
DEFAULT_LIBFABRIC_DIR = "/opt/amazon/efa/lib"
_BAD_LINE = re.compile(r"not found|undefined symbol|cannot open|error while loading")
_RESOLVED = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)")


def ldd(path: str, relocations: bool) -> tuple[int, str]:
    """Run ``ldd [-r] path``; return its exit status and stdout+stderr."""
    argv = ["ldd", "-r", path] if relocations else ["ldd", path]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def resolved_libraries(ldd_output: str) -> dict[str, str]:
    """``{soname: resolved path or "not"}`` from ``ldd`` output lines ``name => path (addr)``."""
    out: dict[str, str] = {}
    for line in ldd_output.splitlines():
        m = _RESOLVED.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def check_plugin_links(plugin: str, libfabric_dir: str) -> list[str]:
    """Checks 1 and 2: every dependency and symbol version of the plugin resolves."""
    if not Path(plugin).is_file():
        return [f"{plugin} does not exist (did the EFA installer run?)"]
    problems: list[str] = []
    rc, out = ldd(plugin, relocations=True)
    bad = [line.strip() for line in out.splitlines() if _BAD_LINE.search(line)]
    if rc != 0 or bad:
        problems.append(f"ldd -r {plugin} (exit {rc}):\n    " + "\n    ".join(bad or [out.strip()]))
    fabric = resolved_libraries(out).get("libfabric.so.1", "")
    want = str(Path(libfabric_dir).resolve())
    if not fabric or fabric == "not":
        problems.append(f"{plugin} does not resolve libfabric.so.1")
    elif not str(Path(fabric).resolve()).startswith(want + os.sep):
        problems.append(
            f"{plugin} resolves libfabric.so.1 to {fabric}, not the EFA installer's copy in "
            f"{libfabric_dir}: put {libfabric_dir} in front on LD_LIBRARY_PATH"
        )
    return problems


def check_efa_provider_dso(libfabric_dir: str) -> list[str]:
    """Check 2b: an efa provider that libfabric loads as a DSO resolves too.

    libfabric can build a provider as a separate library it dlopens at run time from
    ``<libdir>/libfabric/`` (``lib<name>-fi.so``, libfabric ``src/fabric.c``
    ``ofi_load_dl_prov``); its ``libefa`` needs are then invisible to ``ldd`` of the plugin. A
    built-in efa provider (no such file) is covered by check 1. Only ``libefa-fi.so*`` is
    checked: other DSO providers are not needed for EFA.
    """
    problems: list[str] = []
    for dso in sorted((Path(libfabric_dir) / "libfabric").glob("libefa-fi.so*")):
        rc, out = ldd(str(dso), relocations=True)
        bad = [line.strip() for line in out.splitlines() if _BAD_LINE.search(line)]
        if rc != 0 or bad:
            problems.append(f"ldd -r {dso} (exit {rc}):\n    " + "\n    ".join(bad or [out.strip()]))
    return problems


def _mapped_files() -> set[str]:
    """Resolved paths of every file mapped into this process."""
    out: set[str] = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            out.add(str(Path(parts[5]).resolve()))
    return out


def check_dlopen(plugin: str) -> list[str]:
    """Check 3: the plugin loads with every symbol bound now, by path and by NCCL's name."""
    mode = os.RTLD_NOW | os.RTLD_LOCAL
    # By name first: once loaded by path, the loader would answer a by-name dlopen from its
    # list of loaded objects (soname match) without searching LD_LIBRARY_PATH at all.
    try:
        ctypes.CDLL(PLUGIN_NAME, mode=mode)
    except OSError as e:
        by_name = f"dlopen({PLUGIN_NAME}) by name, as NCCL does, failed: {e}"
        try:
            ctypes.CDLL(plugin, mode=mode)
        except OSError as e2:
            return [by_name, f"dlopen({plugin}, RTLD_NOW) failed too: {e2}"]
        return [by_name + f" (by path it loads: put {Path(plugin).parent} on LD_LIBRARY_PATH)"]
    mapped = _mapped_files()
    if str(Path(plugin).resolve()) not in mapped:
        other = sorted(m for m in mapped if "libnccl-net" in os.path.basename(m))
        return [f"dlopen({PLUGIN_NAME}) by name loads {', '.join(other) or '?'}, not {plugin}"]
    return []


def check_no_second_nccl(ld_library_path: str) -> list[str]:
    """Check 4: no ``libnccl.so*`` in a directory of ``LD_LIBRARY_PATH``."""
    problems = []
    for d in filter(None, ld_library_path.split(":")):
        hits = sorted(str(p) for p in Path(d).glob("libnccl.so*")) if Path(d).is_dir() else []
        if hits:
            problems.append(f"{', '.join(hits)} on LD_LIBRARY_PATH would load in front of torch's own NCCL")
    return problems


def check_library_path(ld_library_path: str, plugin_dir: str) -> list[str]:
    """Check 0: ``LD_LIBRARY_PATH`` leads with the plugin directory and has no empty entry (an
    empty entry, such as a trailing ``:``, makes the loader search the working directory)."""
    entries = ld_library_path.split(":")
    problems = []
    if "" in entries:
        problems.append(f"LD_LIBRARY_PATH={ld_library_path!r} has an empty entry (the working directory)")
    if not entries or entries[0] != plugin_dir:
        problems.append(f"LD_LIBRARY_PATH does not start with the plugin directory {plugin_dir}")
    return problems


def check_torch_nccl() -> list[str]:
    """Check 5 (report only): where torch's CUDA library resolves ``libnccl.so.2``.

    Never fails the build on its own: which NCCL torch uses is the base image's choice (its
    nvidia-nccl wheel, found through torch's RUNPATH or preloaded by ``torch/__init__.py``);
    check 4 is what keeps a second NCCL of ours out of its way. Prints ``ok`` for the wheel and
    ``WARN`` for anything else, so the build log says which NCCL the plugin will serve.
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return ["torch is not installed"]
    torch_dir = Path(next(iter(spec.submodule_search_locations)))
    lib = torch_dir / "lib" / "libtorch_cuda.so"
    if not lib.is_file():
        return [f"{lib} does not exist (a CPU-only torch?)"]
    _, out = ldd(str(lib), relocations=False)
    nccl = resolved_libraries(out).get("libnccl.so.2")
    if nccl is None:
        print("ok   torch's NCCL: linked into libtorch_cuda.so")
    elif nccl == "not":
        # Not on the loader path: torch preloads the wheel's copy by full path.
        wheel = sorted(str(p) for p in torch_dir.parent.glob("nvidia/**/libnccl.so.2"))
        if wheel:
            print(f"ok   torch's NCCL: {wheel[0]} (preloaded by torch)")
        else:
            print("WARN torch's NCCL: libnccl.so.2 found neither on the loader path nor in a wheel")
    elif f"{os.sep}nvidia{os.sep}" in nccl and "-packages" in nccl:
        print(f"ok   torch's NCCL: {nccl}")
    else:
        print(f"WARN torch's NCCL: {nccl} (not the nvidia-nccl wheel; the base image's choice)")
    return []


def report_gdrcopy() -> None:
    """Report only: aws-ofi-nccl dlopens ``libgdrapi.so`` and runs without it when absent."""
    try:
        ctypes.CDLL("libgdrapi.so", mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError:
        print("WARN GDRCopy: libgdrapi.so not loadable; aws-ofi-nccl runs without it")
    else:
        print("ok   GDRCopy: libgdrapi.so loads")


def check_sglang_version(expected: str) -> list[str]:
    """Check 6: the installed sglang is the version the project renders flags for."""
    try:
        found = importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        return ["sglang is not installed"]
    if found != expected:
        return [f"sglang {found} is installed; the project renders flags for {expected}"]
    return []


EFA_BUILD_MARKER = b"Installing EFA transport as requested by protocol parameter"
DRIVER_LIBS = ("libcuda.so", "libnvidia-ml.so")
_DRIVER_SYMBOL = re.compile(r"undefined symbol: (cu[A-Z]|nvml)")
"""NVIDIA driver libraries: absent while building, mounted into the container at run time."""


def _site_dirs() -> list[Path]:
    return [Path(p) for p in sys.path if p and Path(p).is_dir()]


def check_engine_library(lib: Path, libfabric_dir: str) -> list[str]:
    """``ldd -r`` of a transfer-engine library: resolves (driver libraries aside) and binds
    ``libfabric.so.1`` inside ``libfabric_dir``."""
    rc, out = ldd(str(lib), relocations=True)
    # Missing driver libraries leave their own symbols undefined too (the CUDA driver API is
    # cu*, NVML nvml*): both come with the driver at run time.
    no_driver = any(d in line and "not found" in line for line in out.splitlines() for d in DRIVER_LIBS)
    bad = [
        line.strip()
        for line in out.splitlines()
        if _BAD_LINE.search(line)
        and not any(d in line for d in DRIVER_LIBS)
        and not (no_driver and _DRIVER_SYMBOL.search(line))
    ]
    problems = [f"ldd -r {lib}:\n    " + "\n    ".join(bad)] if bad or (rc != 0 and not out) else []
    fabric = resolved_libraries(out).get("libfabric.so.1", "")
    want = str(Path(libfabric_dir).resolve())
    if not fabric or fabric == "not":
        problems.append(f"{lib} does not link libfabric.so.1 (not an EFA build)")
    elif not str(Path(fabric).resolve()).startswith(want + os.sep):
        problems.append(
            f"{lib} binds libfabric.so.1 to {fabric}, not the EFA installer's copy in {libfabric_dir}"
        )
    return problems


def check_kv_engine(engine: str, libfabric_dir: str) -> list[str]:
    """Check 8: the prefill/decode KV transfer engine is an EFA build on the installer's libfabric."""
    if engine == "mooncake":
        owners = importlib.metadata.packages_distributions().get("mooncake", [])
        efa = [d for d in owners if d.lower().replace("_", "-").startswith("mooncake-transfer-engine-efa")]
        problems = []
        if not efa:
            problems.append(f"the mooncake package comes from {owners or 'nothing'}, not an EFA wheel")
        plain = [d for d in owners if d not in efa]
        if plain:
            problems.append(f"{', '.join(plain)} also installs mooncake/ (no EFA transport): uninstall it")
        libs = sorted(lib for d in _site_dirs() for lib in (d / "mooncake").glob("engine*.so"))
        if not libs:
            return [*problems, "mooncake/engine*.so not found"]
        problems += check_engine_library(libs[0], libfabric_dir)
        if EFA_BUILD_MARKER not in libs[0].read_bytes():
            problems.append(f"{libs[0]} is not Mooncake's EFA build (no EFA transport installer in it)")
        return problems
    if engine == "nixl":
        owners = importlib.metadata.packages_distributions()
        missing = [m for m in ("nixl", "nixl_cu13") if m not in owners]
        if missing:
            return [f"NIXL module(s) {', '.join(missing)} not installed (SGLang imports nixl._api)"]
        plugins = sorted(p for d in _site_dirs() for p in d.glob("*nixl*/**/libplugin_LIBFABRIC*.so"))
        if not plugins:
            return ["NIXL's libplugin_LIBFABRIC.so not found (NIXL would fall back to UCX or fail)"]
        return check_engine_library(plugins[0], libfabric_dir)
    return []


def main(argv: list[str] | None = None) -> int:
    """Run every check; print each result; return 0 only when all passed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--plugin", default=DEFAULT_PLUGIN)
    ap.add_argument("--libfabric-dir", default=DEFAULT_LIBFABRIC_DIR)
    ap.add_argument("--sglang-version", default="")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch NCCL check")
    ap.add_argument("--kv-engine", choices=("none", "mooncake", "nixl"), default="none")
    args = ap.parse_args(argv)

    ld_path = os.environ.get("LD_LIBRARY_PATH", "")
    print(f"     LD_LIBRARY_PATH={ld_path}")
    checks: list[tuple[str, list[str]]] = [
        ("library path", check_library_path(ld_path, str(Path(args.plugin).parent))),
        ("plugin links", check_plugin_links(args.plugin, args.libfabric_dir)),
        ("efa provider DSO", check_efa_provider_dso(args.libfabric_dir)),
        ("plugin dlopen", check_dlopen(args.plugin)),
        ("one NCCL", check_no_second_nccl(ld_path)),
    ]
    if not args.no_torch:
        checks.append(("torch NCCL", check_torch_nccl()))
    if args.sglang_version:
        checks.append(("sglang version", check_sglang_version(args.sglang_version)))
    if args.kv_engine != "none":
        checks.append((f"{args.kv_engine} on EFA", check_kv_engine(args.kv_engine, args.libfabric_dir)))
    report_gdrcopy()
    failed = False
    for name, problems in checks:
        if problems:
            failed = True
            for p in problems:
                print(f"FAIL {name}: {p}")
        else:
            print(f"ok   {name}")
    if failed:
        print("EFA stack check failed: NCCL would fall back to TCP sockets", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
