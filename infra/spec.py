"""The stack spec: a typed, validated model of one stack file's ``sglang-cluster:*`` config.

The config is flat (one key per setting) because Pulumi's project config schema declares only
``string``, ``integer``, ``boolean`` and ``array`` types
(https://github.com/pulumi/pulumi/blob/master/sdk/go/common/workspace/project.json); the
``config:`` section of ``Pulumi.yaml`` is generated from this model (``python -m infra schema``)
so that every key has a description and the same default here and there.

Rules that need only the spec live here; rules that need the instance catalog, the model shape
and the layout live in :mod:`infra.planning.layout`. Both raise :class:`SpecError`, whose message
names the config key, the value and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from infra.planning import catalog, flags, syntax
from infra.planning.shapes import DTYPE_BYTES, KNOWN_MODELS, ModelShape

PROJECT = "sglang-cluster"
"""Pulumi project name, and so the namespace of every config key (``sglang-cluster:tp_size``)."""

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

SECRET_KEYS: dict[str, str] = {
    "hf_token": "Hugging Face token for gated models (set with `pulumi config set --secret "
    "hf_token`). Stored as an SSM SecureString, read by the nodes at boot; never in user data.",
    "router_api_key": "API key clients must send to the router (set with `pulumi config set "
    "--secret router_api_key`). Stored as an SSM SecureString; empty = no key.",
}
"""Secret config keys: read with ``pulumi.Config.get_secret``, never part of :class:`StackSpec`."""

FSX_THROUGHPUTS = (125, 250, 500, 1000)
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""Values CloudWatch Logs accepts for a retention period (PutRetentionPolicy)."""

_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
_AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")


class SpecError(ValueError):
    """A stack config that cannot be deployed.

    Attributes:
        key: the fully qualified config key (``sglang-cluster:tp_size``) or ``""`` when the
            problem spans several keys (then the message names them).
        message: one sentence saying what is wrong and what is allowed.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


def qualified(key: str) -> str:
    """``tp_size`` -> ``sglang-cluster:tp_size``."""
    return f"{PROJECT}:{key}"


def _no_newline(value: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("must be a single line (no newline or NUL characters)")
    return value


class StackSpec(BaseModel):
    """Everything one stack file says about its cluster. Field names are the config keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- model ---
    model: str = Field(
        min_length=1,
        description="Hugging Face model id (Qwen/Qwen2.5-72B-Instruct) or an absolute path to a "
        "local checkpoint on the node (/fsx/models/my-model).",
    )
    served_model_name: str = Field(
        "", description="Name clients send as `model` in OpenAI requests; empty = the model id."
    )
    model_params_billion: float = Field(
        0.0,
        ge=0,
        description="Total parameters in billions (all experts for MoE). Needed only for models "
        "the project has no shape for; 0 = use the known shape.",
    )
    model_dtype: Literal["", "bfloat16", "float16", "float32", "float8", "int8", "int4"] = Field(
        "", description="Weight dtype for the memory-fit check; empty = the known shape's dtype."
    )
    trust_remote_code: bool = Field(
        False, description="Pass --trust-remote-code to SGLang (models with custom code)."
    )

    # --- layout ---
    tp_size: int = Field(1, ge=1, description="Tensor parallel size of each server (--tp-size).")
    pp_size: int = Field(1, ge=1, description="Pipeline parallel size of each server (--pp-size).")
    dp_size: int = Field(
        1,
        ge=1,
        description="Data parallel size inside one server (--dp-size). Without attention_dp this "
        "runs dp_size replicas of TP inside one server on one node; prefer `replicas` for "
        "independent servers behind the router.",
    )
    ep_size: int = Field(
        1, ge=1, description="Expert parallel size for MoE models (--ep-size); must divide tp_size."
    )
    attention_dp: bool = Field(
        False,
        description="Data-parallel attention inside the TP group (--attn-dp-size dp_size); "
        "needs dp_size > 1 dividing tp_size.",
    )
    replicas: int = Field(1, ge=1, description="Independent servers behind the router (each tp*pp*dp GPUs).")
    servers_per_node: int = Field(
        0,
        ge=0,
        description="Servers packed on one node when a server needs fewer GPUs than a node has; "
        "0 = as many as fit.",
    )

    # --- nodes ---
    instance_type: str = Field(description="EC2 instance type of the GPU nodes (p5.48xlarge).")
    node_count: int = Field(
        0,
        ge=0,
        description="Expected number of GPU nodes; 0 = derived from the layout. When set, a "
        "layout that needs a different count is refused.",
    )
    ami_id: str = Field(
        "",
        description="AMI id for GPU nodes; empty = the latest Base OSS Nvidia Driver DLAMI "
        "(Ubuntu 22.04) resolved from its public SSM parameter at launch.",
    )
    root_volume_gib: int = Field(
        0,
        ge=0,
        description="Root gp3 volume size in GiB; 0 = sized for the image and the model cache.",
    )

    # --- capacity (rules in infra/planning/capacity.py) ---
    capacity_reservation_id: str = Field(
        "",
        description="Capacity Reservation the GPU nodes launch into: an On-Demand Capacity "
        "Reservation or a Capacity Block id (cr- and 17 hex digits); empty = on demand.",
    )
    capacity_block: bool = Field(
        False,
        description="capacity_reservation_id is a Capacity Block for ML (required for a block: EC2 "
        "refuses a block launch without it): launch with the capacity-block market type and no "
        "placement group (the block places nodes together).",
    )
    capacity_reservation_az: str = Field(
        "",
        description="AZ of the reservation, as EC2 shows it; when set it must equal "
        "availability_zone. Empty = not checked offline.",
    )
    placement_group_name: str = Field(
        "",
        description="Existing cluster placement group to launch the GPU nodes into (the one an "
        "On-Demand Capacity Reservation was created in); empty = the stack creates one for EFA types.",
    )

    # --- network ---
    availability_zone: str = Field(
        "",
        description="AZ of the subnet when the project creates the VPC (EFA does not cross AZs). "
        "Required unless subnet_id is given.",
    )
    vpc_cidr: str = Field("10.0.0.0/16", description="CIDR of the VPC the project creates.")
    vpc_id: str = Field("", description="Existing VPC id; empty = create a VPC.")
    subnet_id: str = Field(
        "", description="Existing private subnet for the GPU nodes (with a NAT route); needs vpc_id."
    )
    router_subnet_id: str = Field(
        "",
        description="Existing subnet for the router node; required with vpc_id when "
        "router_public_ip is true (a public subnet); empty = subnet_id for a private router.",
    )
    client_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the router port (no default: the router is never "
        "opened to the internet unless you write 0.0.0.0/0 here).",
    )

    # --- model store ---
    model_store: bool = Field(
        True,
        description="Create an FSx for Lustre file system shared by every node, mounted at /fsx; "
        "weights land in /fsx/models/<model id> once and every rank loads them from there.",
    )
    fsx_deployment_type: Literal["PERSISTENT_2", "SCRATCH_2"] = Field(
        "PERSISTENT_2",
        description="FSx for Lustre deployment type; SCRATCH_2 (not replicated) only for stacks "
        "named dev or dev-*.",
    )
    fsx_capacity_gib: int = Field(
        0,
        ge=0,
        description="FSx capacity in GiB: 1200 or a multiple of 2400; 0 = sized from the weights.",
    )
    fsx_throughput_mb_per_tib: int = Field(
        250, description="PERSISTENT_2 throughput in MB/s per TiB: 125, 250, 500 or 1000."
    )
    model_s3_uri: str = Field(
        "",
        description="s3://bucket/prefix holding <model id>/ folders; associated with /fsx/models so "
        "weights load lazily from S3 instead of the Hugging Face hub. Empty = download from the hub.",
    )

    # --- serving image ---
    image_source: Literal["auto", "uri", "mirror", "build"] = Field(
        "auto",
        description="auto: build when a server spans several nodes of an EFA type (NCCL crosses "
        "nodes over EFA) unless image_efa_complete is true, else uri; uri: run `image` as given; "
        "mirror: copy `image` unchanged into this stack's ECR repository; build: build "
        "docker/Dockerfile (`image` plus the EFA installer) and push it to that repository.",
    )
    log_retention_days: int = Field(30, description="Retention of the stack's CloudWatch log group, in days.")

    # --- router ---
    router_policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = Field(
        "cache_aware", description="Router load-balancing policy (--policy)."
    )
    router_port: int = Field(8000, ge=1024, le=65535, description="Router HTTP port.")
    router_prometheus_port: int = Field(
        29000, ge=1024, le=65535, description="Router Prometheus metrics port."
    )
    router_instance_type: str = Field("c7i.xlarge", description="EC2 instance type of the CPU router node.")
    router_worker_startup_timeout_secs: int = Field(
        0,
        ge=0,
        description="Seconds the router waits for workers to become healthy; 0 = sized from the "
        "model's weight size (at least 1800 s).",
    )
    router_public_ip: bool = Field(
        True,
        description="Give the router a public IPv4, an Elastic IP that survives replacements (in "
        "the public subnet of a created VPC, or router_subnet_id).",
    )

    # --- server ---
    image: str = Field(
        "lmsysorg/sglang:v0.5.23",
        description="Serving container image (must carry SGLang 0.5.23): what nodes run in uri "
        "and mirror modes, the base docker/Dockerfile adds the EFA stack to in build mode. "
        "SGLang's public release image by default (no EFA stack).",
    )
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
    efa_host_libraries: bool = Field(
        False,
        description="Removed: bind-mounting the host's /opt/amazon into an image with distro "
        "rdma-core cannot load aws-ofi-nccl. Only false is accepted; use an EFA-complete image.",
    )
    image_efa_complete: bool = Field(
        False,
        description="State that `image` carries libfabric, rdma-core and aws-ofi-nccl from one "
        "EFA installer (built from docker/Dockerfile, or an AWS SGLang DLC) with NCCL_NET_PLUGIN=ofi "
        "and the plugin on LD_LIBRARY_PATH; lets multi-node EFA servers run it in uri/mirror mode.",
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
    tags: list[str] = Field(
        default_factory=list, description="Extra tags on every resource as KEY=VALUE strings."
    )

    # ----- field rules -----
    @field_validator("model", "served_model_name", "image", "ami_id")
    @classmethod
    def _single_line(cls, v: str) -> str:
        return _no_newline(v)

    @field_validator("require_efa", mode="before")
    @classmethod
    def _require_efa(cls, v: object) -> object:
        # YAML stack files give booleans; Pulumi hands every value over as a string.
        if isinstance(v, bool):
            return "true" if v else "false"
        return v.lower() if isinstance(v, str) else v

    @field_validator("served_model_name")
    @classmethod
    def _served_name(cls, v: str) -> str:
        # SGLang 0.5.23 refuses ':' in --served-model-name (arg_groups/validation_hook.py).
        if ":" in v:
            raise ValueError("may not contain ':' (SGLang refuses it)")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        # Docker's reference grammar (distribution/reference), see infra/planning/syntax.py.
        syntax.parse_image_reference(v)
        return v

    @field_validator("vpc_id", "subnet_id", "router_subnet_id", "ami_id", "capacity_reservation_id")
    @classmethod
    def _aws_ids(cls, v: str, info: ValidationInfo) -> str:
        prefix = {"vpc_id": "vpc", "ami_id": "ami", "capacity_reservation_id": "cr"}.get(
            info.field_name or "", "subnet"
        )
        problem = syntax.aws_id_error(v, prefix) if v else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("mem_fraction_static")
    @classmethod
    def _mem_fraction(cls, v: float) -> float:
        if v and not 0.1 < v < 0.99:
            raise ValueError("must be 0 (SGLang chooses per layout) or between 0.1 and 0.99")
        return v

    @field_validator("efa_host_libraries")
    @classmethod
    def _efa_host_libraries(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "no longer supported: the host's libfabric needs libefa symbol versions (EFA_1.2+) "
                "that an image's distro rdma-core lacks, so aws-ofi-nccl fails to load and NCCL "
                "silently uses TCP sockets; remove the key and run an EFA-complete image "
                "(image_source build, the default for multi-node servers on EFA types)"
            )
        return v

    @field_validator("fsx_capacity_gib")
    @classmethod
    def _fsx_capacity(cls, v: int) -> int:
        if v and not (v == 1200 or v % 2400 == 0):
            raise ValueError("must be 1200 or a multiple of 2400 (FSx for Lustre SSD increments)")
        return v

    @field_validator("fsx_throughput_mb_per_tib")
    @classmethod
    def _fsx_throughput(cls, v: int) -> int:
        if v not in FSX_THROUGHPUTS:
            raise ValueError(f"allowed: {', '.join(map(str, FSX_THROUGHPUTS))}")
        return v

    @field_validator("model_s3_uri")
    @classmethod
    def _s3(cls, v: str) -> str:
        if v and not _S3_URI.match(v):
            raise ValueError("must look like s3://bucket/prefix")
        return v.rstrip("/")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return v

    @field_validator("instance_type")
    @classmethod
    def _gpu_type(cls, v: str) -> str:
        t = catalog.CATALOG.get(v)
        if t is None or t.gpus == 0:
            raise ValueError(f"unknown GPU instance type; allowed: {', '.join(catalog.GPU_TYPES)}")
        return v

    @field_validator("router_instance_type")
    @classmethod
    def _cpu_type(cls, v: str) -> str:
        if v not in catalog.CATALOG:
            allowed = ", ".join(catalog.CPU_TYPES + catalog.GPU_TYPES)
            raise ValueError(f"unknown instance type; allowed: {allowed}")
        return v

    @field_validator("availability_zone", "capacity_reservation_az")
    @classmethod
    def _az(cls, v: str) -> str:
        if v and not _AZ.match(v):
            raise ValueError("must look like us-east-1a")
        return v

    @field_validator("placement_group_name")
    @classmethod
    def _placement_group_name(cls, v: str) -> str:
        # CreatePlacementGroup: "Up to 255 ASCII characters".
        if v and not re.fullmatch(r"[ -~]{1,255}", v):
            raise ValueError("must be 1 to 255 printable ASCII characters (an existing placement group)")
        return v

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, v: str) -> str:
        net = ipaddress.ip_network(v, strict=True)
        if net.version != 4 or not 16 <= net.prefixlen <= 22:
            raise ValueError("must be an IPv4 CIDR with a prefix from /16 to /22")
        return v

    @field_validator("client_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for c in v:
            try:
                ipaddress.ip_network(c, strict=True)
            except ValueError as e:
                raise ValueError(f"{c!r} is not a CIDR ({e})") from None
        return v

    @field_validator("server_env")
    @classmethod
    def _env(cls, v: list[str]) -> list[str]:
        for item in v:
            _no_newline(item)
            name, sep, _ = item.partition("=")
            if not sep or not _ENV_NAME.match(name):
                raise ValueError(f"{item!r} must be KEY=VALUE with KEY like HF_HOME")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for item in v:
            key, sep, value = item.partition("=")
            if not sep or not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
                raise ValueError(f"{item!r} must be KEY=VALUE (key not starting with aws:)")
            _no_newline(value)
        return v

    @field_validator("extra_server_args")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        known = flags.server_flags()
        dests = flags.server_dests()
        for i, arg in enumerate(v):
            _no_newline(arg)
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

    # ----- derived values -----
    @property
    def served_name(self) -> str:
        """The name clients use in requests."""
        return self.served_model_name or self.model

    @property
    def node_type(self) -> catalog.InstanceType:
        """Catalog entry of the GPU node type."""
        return catalog.lookup(self.instance_type)

    @property
    def router_type(self) -> catalog.InstanceType:
        """Catalog entry of the router node type."""
        return catalog.lookup(self.router_instance_type)

    @property
    def creates_vpc(self) -> bool:
        """True when the project creates the VPC and subnets."""
        return not self.vpc_id

    @property
    def tag_map(self) -> dict[str, str]:
        """``tags`` as a dict."""
        return dict(t.split("=", 1) for t in self.tags)

    @property
    def env_map(self) -> dict[str, str]:
        """``server_env`` as an ordered dict."""
        return dict(e.split("=", 1) for e in self.server_env)

    def shape(self) -> ModelShape:
        """The model shape: the known one, overridden by ``model_params_billion``/``model_dtype``.

        Raises:
            SpecError: for an unknown model without ``model_params_billion`` and ``model_dtype``.
        """
        known = KNOWN_MODELS.get(self.model)
        if known is None:
            if not self.model_params_billion or not self.model_dtype:
                raise SpecError(
                    qualified("model_params_billion"),
                    f"model {self.model!r} has no known shape; set model_params_billion and "
                    f"model_dtype (one of {', '.join(DTYPE_BYTES)}). Known models: "
                    f"{', '.join(KNOWN_MODELS)}",
                )
            return ModelShape(self.model_params_billion, self.model_dtype)
        return ModelShape(
            self.model_params_billion or known.params_billion,
            self.model_dtype or known.dtype,
            known.layers,
            known.attention_heads,
            known.experts,
        )


def _cross_field(spec: StackSpec) -> None:
    """Rules between keys of the spec alone (network and required keys)."""
    if not spec.client_cidrs:
        raise SpecError(
            qualified("client_cidrs"),
            'required: list the CIDRs allowed to reach the router (e.g. ["203.0.113.0/24"]); '
            "the project never opens the router to the internet by default",
        )
    if spec.vpc_id and not spec.subnet_id:
        raise SpecError(qualified("subnet_id"), "required when vpc_id is set (one subnet, one AZ)")
    if (spec.subnet_id or spec.router_subnet_id) and not spec.vpc_id:
        raise SpecError(qualified("vpc_id"), "required when subnet_id or router_subnet_id is set")
    if spec.vpc_id and spec.router_public_ip and not spec.router_subnet_id:
        # subnet_id is the GPU nodes' private subnet (NAT route only): a public IP there is
        # unreachable from clients.
        raise SpecError(
            qualified("router_subnet_id"),
            "required when vpc_id is set and router_public_ip is true: give a public subnet "
            "(route 0.0.0.0/0 to an internet gateway) in the same VPC, or set "
            "router_public_ip false to keep the router private in subnet_id",
        )
    if not spec.vpc_id and not spec.availability_zone:
        raise SpecError(
            qualified("availability_zone"),
            "required when the project creates the VPC: EFA and cluster placement groups stay in "
            "one AZ; pick one that offers "
            f"{spec.instance_type} (aws ec2 describe-instance-type-offerings "
            "--location-type availability-zone)",
        )
    if spec.router_port == spec.router_prometheus_port:
        raise SpecError(qualified("router_prometheus_port"), "must differ from router_port")
    if abs(spec.server_port - spec.dist_init_port) < 1000:
        raise SpecError(
            qualified("dist_init_port"),
            f"{spec.dist_init_port} is within 1000 of server_port {spec.server_port}; SGLang "
            "derives ports above both, keep them at least 1000 apart",
        )
    if spec.served_model_name == "" and spec.model.startswith("/"):
        raise SpecError(
            qualified("served_model_name"),
            "required when model is a local path (clients need a stable name)",
        )
    if spec.model_s3_uri and spec.fsx_deployment_type == "SCRATCH_2":
        raise SpecError(
            qualified("model_s3_uri"),
            "S3 associations at /fsx/models need PERSISTENT_2 (SCRATCH_2 links S3 only at the "
            "file system root); set fsx_deployment_type PERSISTENT_2 or leave model_s3_uri empty",
        )
    if spec.model_s3_uri and not spec.model_store:
        raise SpecError(
            qualified("model_s3_uri"), "needs model_store true (S3 is associated with /fsx/models)"
        )
    if spec.model_s3_uri and spec.model.startswith("/"):
        raise SpecError(
            qualified("model_s3_uri"),
            "a local checkpoint path in `model` skips every download; leave model_s3_uri empty",
        )


def check_region(spec: StackSpec, region: str) -> None:
    """Rules between the spec and ``aws:region`` (which the spec model does not hold).

    An Availability Zone name is its region's code plus a letter (``us-east-1a`` belongs to
    ``us-east-1``; https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html,
    read 2026-11); a subnet in another region's AZ cannot be created by the stack's provider.

    Args:
        spec: the validated spec.
        region: the stack's ``aws:region``.

    Raises:
        SpecError: ``aws:region`` when it is not spelled like a region code or is outside the
            commercial ``aws`` partition (GovCloud, China, ISO), or
            ``sglang-cluster:availability_zone`` when the AZ is not in the region.
    """
    if not syntax.is_region(region):
        raise SpecError("aws:region", f"{region!r} is not an AWS region code (us-east-1, eu-west-2, ...)")
    partition = syntax.region_partition(region)
    if partition != "aws":
        # IAM policies, the KMS key policy, SSM parameter ARNs and the AWS managed policy
        # are written as arn:aws:...; another partition refuses them mid-deploy.
        raise SpecError(
            "aws:region",
            f"{region} is in the {partition or 'unknown'} partition; this program writes ARNs of "
            "the commercial aws partition (arn:aws:...) into its IAM and KMS key policies; use a "
            "commercial region (us-east-1, us-west-2, eu-west-1, ...)",
        )
    az = spec.availability_zone
    if az and syntax.az_region(az) != region:
        raise SpecError(
            qualified("availability_zone"),
            f"{az} is in {syntax.az_region(az)}, not in the stack's region {region} "
            f"(aws:region); use an AZ of {region} such as {region}a, or change aws:region",
        )


def _decode_value(field: str, raw: Any) -> Any:
    """Turn one Pulumi config value (always a string at runtime) into the field's Python value."""
    info = StackSpec.model_fields.get(field)
    if info is None or not isinstance(raw, str) or info.annotation is str:
        return raw
    if info.annotation is not None and getattr(info.annotation, "__origin__", None) is Literal:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_NOT_ECHOED = frozenset({"extra_server_args", "server_env"})
"""Keys whose given value a refusal never repeats: they are lists that may hold a secret
(``--api-key VALUE``, ``HF_TOKEN=...``), and the message is printed to terminals and CI logs."""


def _format_validation_error(err: ValidationError) -> SpecError:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = loc[0] if loc else ""
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(StackSpec.model_fields)
        return SpecError(qualified(key), f"unknown config key; allowed keys: {allowed}")
    if first["type"] == "missing":
        desc = StackSpec.model_fields[key].description or ""
        return SpecError(qualified(key), f"required: {desc}")
    given = first.get("input")
    shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
    if key in _NOT_ECHOED:
        shown = ""
    where = "[" + "][".join(loc[1:]) + "]" if len(loc) > 1 else ""
    return SpecError(qualified(key) + where, f"{msg}{shown}")


def parse_config(values: Mapping[str, Any]) -> StackSpec:
    """Validate a stack's config into a :class:`StackSpec`.

    Args:
        values: config keys of this project, either bare (``tp_size``) or qualified
            (``sglang-cluster:tp_size``); values as Pulumi hands them to a program (strings,
            JSON for arrays) or as YAML gives them (ints, lists). Keys of other namespaces
            (``aws:region``) are ignored.

    Returns:
        The frozen, validated spec.

    Raises:
        SpecError: the first problem found, naming the key and what is allowed.
    """
    own: dict[str, Any] = {}
    for k, v in values.items():
        ns, sep, bare = k.partition(":")
        if sep and ns != PROJECT:
            continue
        name = bare if sep else k
        if name in SECRET_KEYS:
            continue
        if isinstance(v, dict) and "secure" in v:
            raise SpecError(qualified(name), "is a secret here, but this key takes a plain value")
        own[name] = _decode_value(name, v)
    try:
        spec = StackSpec.model_validate(own)
    except ValidationError as e:
        raise _format_validation_error(e) from None
    _cross_field(spec)
    return spec
