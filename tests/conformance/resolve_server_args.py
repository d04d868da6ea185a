"""Run inside .tools/sglang-resolve-venv: SGLang 0.5.23's full server-argument resolution.

For each argv: ``prepare_server_args`` (the real ``sglang serve`` parser), then
``ServerArgs.resolve_once()`` (the whole resolution pipeline: model config, platform, memory,
parallelism, MoE, CUDA graphs, ...) and ``check_server_args()``; the result is a subset of
``resolved_dict()``.

There is no GPU here, so this process EMULATES ONE: before SGLang is imported it patches
torch's device probes (``torch.cuda.is_available``, ``device_count``, ``current_device``,
``get_device_name``, ``get_device_capability``, ``get_device_properties``, ``mem_get_info``,
``torch.version.cuda``) and puts a stand-in ``nvidia-smi`` first on PATH that prints the GPU's
``memory.total`` (SGLang reads the GPU size from ``nvidia-smi``, ``utils/common.py``). The
figures come from stdin (the test passes H100 80GB HBM3 for p5, L40S for g6e).

Two modules cannot load on a CPU-only machine and are stand-ins (empty modules whose attributes
are placeholders that raise when called): ``sgl_kernel`` (CUDA kernels; its import queries the
device) and ``torchvision`` (the PyPI wheel links CUDA torch). Resolution imports them only for
the names of vision processors and quantization kernels; it never calls them for these models.
transformers is told torchvision is absent before the stand-in exists, as on a text-only install.

stdin: ``{"gpu": {"name", "total_mib", "capability": [major, minor], "count", "sm_count"},
"cases": [{"argv": [...], "model_dir": "/path/with/config.json"}], "infiniband": DIR}``
(``infiniband`` optional: a stand-in ``/sys/class/infiniband``); each argv without
``python3 -m sglang.launch_server``; ``--model-path`` is replaced by ``model_dir``.
stdout: JSON list of ``{"ok": bool, "error": str, "resolved": {...}}``.
"""

# pyright: reportMissingImports=false
# (torch, transformers, sglang, sglang_router live in the tool venvs under .tools/, not in .venv)
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import io
import json
import os
import stat
import sys
import tempfile
import types
from typing import Any

STUBBED = ("sgl_kernel", "torchvision")

KEYS = (
    "model_path",
    "served_model_name",
    "host",
    "port",
    "tp_size",
    "pp_size",
    "dp_size",
    "ep_size",
    "attn_dp_size",
    "nnodes",
    "node_rank",
    "dist_init_addr",
    "base_gpu_id",
    "mem_fraction_static",
    "chunked_prefill_size",
    "attention_backend",
    "enable_metrics",
    "reasoning_parser",
    "tool_call_parser",
    "disable_overlap_schedule",
    "moe_a2a_backend",
    "trust_remote_code",
    "device",
    # prefill/decode pools (infra/planning/pd.py)
    "disaggregation_mode",
    "disaggregation_transfer_backend",
    "disaggregation_bootstrap_port",
    "disaggregation_ib_device",
)


class _Placeholder:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Placeholder:
        return _Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self._name} is a stand-in: no GPU kernels on this machine")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self.__name__}.{attr}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StubModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []


def emulate_gpu(gpu: dict[str, Any], bindir: str) -> None:
    """Patch torch's CUDA probes and put a stand-in nvidia-smi on PATH (see module docstring)."""
    import torch

    total = int(gpu["total_mib"]) * 2**20
    major, minor = gpu["capability"]
    props = types.SimpleNamespace(
        name=gpu["name"],
        total_memory=total,
        major=major,
        minor=minor,
        multi_processor_count=gpu["sm_count"],
        is_integrated=False,
        uuid="GPU-00000000-0000-0000-0000-000000000000",
    )
    torch.cuda.is_available = lambda: True
    torch.version.cuda = "13.0"
    torch.cuda.device_count = lambda: int(gpu["count"])
    torch.cuda.current_device = lambda: 0
    torch.cuda.get_device_name = lambda *a, **k: gpu["name"]
    torch.cuda.get_device_capability = lambda *a, **k: (major, minor)
    torch.cuda.get_device_properties = lambda *a, **k: props
    torch.cuda.mem_get_info = lambda *a, **k: (total, total)

    smi = os.path.join(bindir, "nvidia-smi")
    lines = "\n".join([str(gpu["total_mib"])] * int(gpu["count"]))
    names = "\n".join([gpu["name"]] * int(gpu["count"]))
    with open(smi, "w", encoding="utf-8") as f:
        f.write(
            "#!/bin/sh\n"
            'case "$*" in\n'
            f"  *memory.total*) printf '%s\\n' '{lines}' ;;\n"
            f"  *name*) printf '%s\\n' '{names}' ;;\n"
            '  *) echo "stand-in nvidia-smi: unsupported query: $*" >&2; exit 9 ;;\n'
            "esac\n"
        )
    os.chmod(smi, os.stat(smi).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


IB_SYSFS = "/sys/class/infiniband"


def emulate_infiniband(directory: str) -> None:
    """Answer SGLang's ``/sys/class/infiniband`` probes from ``directory`` (a stand-in sysfs tree
    of EFA devices): SGLang 0.5.23 checks every ``--disaggregation-ib-device`` name against
    ``os.listdir("/sys/class/infiniband")`` (``arg_groups/validation_hook.py``
    ``validate_ib_devices``), and this machine has no RDMA device. Only that exact path is
    redirected."""
    real_isdir, real_listdir = os.path.isdir, os.listdir

    def isdir(path: Any) -> bool:
        return real_isdir(directory if path == IB_SYSFS else path)

    def listdir(path: Any = ".") -> list[str]:
        return real_listdir(directory if path == IB_SYSFS else path)

    os.path.isdir = isdir
    os.listdir = listdir  # type: ignore[assignment]  # same signature for str paths


def _with_model_dir(argv: list[str], model_dir: str) -> list[str]:
    out = list(argv)
    i = out.index("--model-path")
    out[i + 1] = model_dir
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def resolve(argv: list[str]) -> dict[str, Any]:
    """Parse, resolve and check one argv with SGLang's own code."""
    from sglang.srt.server_args import prepare_server_args

    server_args = prepare_server_args(argv)
    server_args.resolve_once()
    server_args.check_server_args()
    resolved = server_args.resolved_dict()
    out = {k: _plain(resolved.get(k)) for k in KEYS}
    graphs = resolved.get("cuda_graph_config") or {}
    out["decode_cuda_graph_max_bs"] = (graphs.get("decode") or {}).get("max_bs")
    out["prefill_cuda_graph_backend"] = _plain((graphs.get("prefill") or {}).get("backend"))
    return out


def main() -> int:
    payload = json.load(sys.stdin)
    # transformers caches "torchvision is absent" before the stand-in can be found.
    from transformers.utils import import_utils

    if import_utils.is_torchvision_available():
        raise SystemExit("a real torchvision is installed; this harness expects none")
    sys.meta_path.insert(0, _StubFinder())
    results = []
    if payload.get("infiniband"):
        emulate_infiniband(payload["infiniband"])
    with tempfile.TemporaryDirectory() as bindir:
        emulate_gpu(payload["gpu"], bindir)
        for case in payload["cases"]:
            log = io.StringIO()
            try:
                with contextlib.redirect_stdout(log):
                    resolved = resolve(_with_model_dir(case["argv"], case["model_dir"]))
                results.append({"ok": True, "error": "", "resolved": resolved})
            except BaseException as e:  # SystemExit from argparse too
                results.append({"ok": False, "error": f"{type(e).__name__}: {e}", "resolved": {}})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
