"""Keys of each ``sglang.launch_server`` process: ports, memory, extra arguments and
environment, and the NCCL/EFA transport check.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.planning import flags
from infra.spec.base import Keys, SpecError, no_newline, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec

# Settings of ``sglang.launch_server`` that the project renders itself, as argparse dests: a
# user's ``extra_server_args`` may not reach them through ANY option string (SGLang 0.5.23 has
# aliases: ``--attention-data-parallel-size`` = ``--attn-dp-size``, ``--tensor-parallel-size``,
# ``--ep`` = ``--ep-size``, ``--model`` = ``--model-path``, ``--nccl-init-addr``...), or the
# layout would silently disagree with the plan.
OWNED_SERVER_DESTS: frozenset[str] = frozenset(
    {
        "model_path",
        "served_model_name",
        "host",
        "port",
        "tp_size",
        "pp_size",
        "dp_size",
        "ep_size",
        "attn_dp_size",
        "enable_dp_attention",
        "nnodes",
        "node_rank",
        "dist_init_addr",
        "base_gpu_id",
        "mem_fraction_static",
        "trust_remote_code",
    }
)

OWNED_SERVER_FLAGS: frozenset[str] = flags.server_options_for(OWNED_SERVER_DESTS)
"""Every option string of the real 0.5.23 parser whose dest is in :data:`OWNED_SERVER_DESTS`
(derived from ``infra/planning/data/sglang_flags.json``, which ``tools/dump_flags.py`` records)."""

_PLAIN_SECRET = (
    "puts a secret in plain stack config, the nodes' user data and the plan; the servers are "
    "reached through the router: protect it with `pulumi config set --secret router_api_key`"
)
REFUSED_SERVER_FLAGS: dict[str, str] = {
    "--config": "reads launch_server options from a YAML file on the node, so it can set any "
    "owned flag behind the plan's back; put the options in extra_server_args instead",
    # sglang 0.5.23 launch_server options that take a secret as their value.
    "--api-key": _PLAIN_SECRET,
    "--admin-api-key": _PLAIN_SECRET,
    "--ssl-keyfile-password": _PLAIN_SECRET,
    "--disaggregation-mode": "turns a server into a prefill or decode worker, which the router "
    "(started in regular mode) cannot pair with its counterpart; prefill/decode pools are not "
    "part of this project yet",
}
"""Flags refused in ``extra_server_args`` whatever their value, with the reason."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ServerKeys(Keys):
    """How every SGLang server process is started."""

    server_port: int = Field(30000, ge=1024, le=65000, description="First SGLang server port.")
    dist_init_port: int = Field(
        20000, ge=1024, le=65000, description="First --dist-init-addr port of multi-node servers."
    )
    mem_fraction_static: float = Field(
        0.0,
        ge=0,
        lt=0.99,
        description="--mem-fraction-static: weights + KV cache share of GPU memory; 0 = unset, "
        "SGLang 0.5.23 chooses per layout (0.80 for TP16 on H100) and the memory-fit check "
        "uses the same formula.",
    )
    min_kv_cache_gib: float = Field(
        2.0, ge=0, description="KV cache per GPU (GiB) the memory-fit check requires after weights."
    )
    extra_server_args: list[str] = Field(
        default_factory=list,
        description="Extra sglang.launch_server arguments, full flag names only, e.g. "
        '["--context-length", "32768"]. Refused: flags the project sets itself (under any '
        "alias), --config, --moe-a2a-backend other than none, and flags that take a secret "
        "(--api-key, --admin-api-key, --ssl-keyfile-password). --reasoning-parser, "
        "--tool-call-parser and --enable-metrics given here replace the project's defaults.",
    )
    server_env: list[str] = Field(
        default_factory=list,
        description="Extra container environment as KEY=VALUE strings.",
    )
    nccl_debug: Literal["", "WARN", "INFO"] = Field(
        "INFO",
        description="NCCL_DEBUG in the container; INFO lets the readiness check confirm NET/OFI.",
    )
    require_efa: Literal["auto", "true", "false"] = Field(
        "auto",
        description="Stop a server whose NCCL does not run on EFA (aws-ofi-nccl with libfabric's "
        "efa provider) instead of letting it serve over TCP. auto = true for servers that span "
        "nodes on an EFA type; true is refused where no NCCL traffic crosses nodes; needs "
        "nccl_debug INFO.",
    )

    @field_validator("require_efa", mode="before")
    @classmethod
    def _require_efa(cls, v: object) -> object:
        # YAML stack files give booleans; Pulumi hands every value over as a string.
        if isinstance(v, bool):
            return "true" if v else "false"
        return v.lower() if isinstance(v, str) else v

    @field_validator("mem_fraction_static")
    @classmethod
    def _mem_fraction(cls, v: float) -> float:
        if v and not 0.1 < v < 0.99:
            raise ValueError("must be 0 (SGLang chooses per layout) or between 0.1 and 0.99")
        return v

    @field_validator("server_env")
    @classmethod
    def _env(cls, v: list[str]) -> list[str]:
        for item in v:
            no_newline(item)
            name, sep, _ = item.partition("=")
            if not sep or not _ENV_NAME.match(name):
                raise ValueError(f"{item!r} must be KEY=VALUE with KEY like HF_HOME")
        return v

    @field_validator("extra_server_args")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        known = flags.server_flags()
        dests = flags.server_dests()
        for i, arg in enumerate(v):
            no_newline(arg)
            if not arg.startswith("--"):
                continue
            flag, eq, inline = arg.partition("=")
            if flag in OWNED_SERVER_FLAGS:
                raise ValueError(
                    f"{flag} sets {dests[flag]}, which the project renders from the layout keys "
                    "(tp_size, pp_size, dp_size, ep_size, attention_dp, server_port, "
                    "mem_fraction_static, ...); remove it from extra_server_args"
                )
            if flag in REFUSED_SERVER_FLAGS:
                raise ValueError(f"{flag} is refused: it {REFUSED_SERVER_FLAGS[flag]}")
            if flag == "--moe-a2a-backend":
                value = inline if eq else (v[i + 1] if i + 1 < len(v) else "")
                if not value:
                    raise ValueError("--moe-a2a-backend needs a value; only none is allowed")
                if value != "none":
                    raise ValueError(
                        f"--moe-a2a-backend {value} is refused: SGLang 0.5.23 then sets "
                        "ep_size = tp_size on its own (arg_groups/overrides.py _a2a_ep_size), so the layout "
                        "would silently differ from ep_size in the plan; only none is allowed"
                    )
            if flag not in known:
                close = sorted(f for f in known if f.startswith(flag))[:5]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(
                    f"{flag} is not a flag of sglang.launch_server {flags.SGLANG_VERSION}; "
                    f"use full flag names{hint}"
                )
        return v

    @property
    def env_map(self) -> dict[str, str]:
        """``server_env`` as an ordered dict."""
        return dict(e.split("=", 1) for e in self.server_env)


def check(spec: StackSpec) -> None:
    """Rules between the server ports.

    Raises:
        SpecError: ``dist_init_port`` within 1000 of ``server_port``.
    """
    if abs(spec.server_port - spec.dist_init_port) < 1000:
        raise SpecError(
            qualified("dist_init_port"),
            f"{spec.dist_init_port} is within 1000 of server_port {spec.server_port}; SGLang "
            "derives ports above both, keep them at least 1000 apart",
        )
