"""The user-data renderer: deterministic MIME, data files that round-trip, size limit."""

from __future__ import annotations

import hashlib
import json
import shlex

import pytest
import yaml

from infra.mockrun import STACKS_DIR, load_stack_config
from infra.planning.bundle import installed_files
from infra.planning.catalog import CATALOG
from infra.planning.cluster import (
    container_env,
    plan_cluster,
    router_boot,
    server_node_boot,
    server_node_env,
)
from infra.planning.userdata import (
    BOOTSTRAP_PATH,
    MAX_USER_DATA_BYTES,
    ServerProcess,
    UserDataTooLargeError,
    cloud_config,
    env_file,
    pack,
    server_user_data,
    shipped_file,
    split_mime,
)
from infra.spec import SpecError, parse_config
from tests.conftest import base_config


def _cloud_config(user_data: str) -> dict:
    parts = split_mime(user_data)
    assert list(parts) == ["text/cloud-config"]
    text = parts["text/cloud-config"]
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def _files(doc: dict) -> dict[str, str]:
    return {f["path"]: f["content"] for f in doc["write_files"]}


def test_rank1_gets_head_ip_and_argv_without_address() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    r1 = plan.layout.nodes[1]
    boot = server_node_boot(plan, r1, "10.0.1.10")
    files = _files(_cloud_config(boot.user_data))
    env = dict(line.split("=", 1) for line in files["/etc/sglang/node.env"].splitlines())
    assert shlex.split(env["SGLANG_DIST_INIT_HOST"]) == ["10.0.1.10"]
    assert shlex.split(env["SGLANG_DIST_INIT_PORT"]) == ["20000"]
    assert shlex.split(env["SGLANG_NODE_RANK"]) == ["1"] and shlex.split(env["SGLANG_NNODES"]) == ["2"]
    argv = files["/etc/sglang/server-0.argv"].splitlines()
    assert "--dist-init-addr" not in argv
    assert [*argv, "--dist-init-addr", "10.0.1.10:20000"] == boot.processes[0]


def test_rank0_user_data_does_not_depend_on_any_ip() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    r0 = plan.layout.nodes[0]
    assert server_node_boot(plan, r0, "").user_data == server_node_boot(plan, r0, "10.9.9.9").user_data


def test_same_plan_same_bytes() -> None:
    a = plan_cluster(parse_config(base_config()), "prod")
    b = plan_cluster(parse_config(base_config()), "prod")
    n = a.layout.nodes[1]
    assert server_node_boot(a, n, "10.0.1.10").user_data == server_node_boot(b, n, "10.0.1.10").user_data


def test_units_started_without_blocking_and_ready_only_on_rank0() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    for node in plan.layout.nodes:
        doc = _cloud_config(server_node_boot(plan, node, "10.0.1.10").user_data)
        # systemd opens the units' log files before ExecStart and creates no directory.
        assert doc["runcmd"][0] == ["install", "-d", "-m", "0755", "/var/log/sglang"]
        # The bootstrap verifies and unpacks the bundle, daemon-reloads, then runs the enable.
        assert doc["runcmd"][-1][0] == BOOTSTRAP_PATH and len(doc["runcmd"]) == 2
        enable = doc["runcmd"][-1][1:]
        assert enable[:4] == ["systemctl", "enable", "--now", "--no-block"]
        assert "sglang-node.service" not in enable  # pulled in by Requires=, not enabled
        assert "sglang-server@0.service" in enable
        assert ("sglang-ready@0.service" in enable) == node.is_head


def test_scripts_are_installed_verbatim_and_executable() -> None:
    plan = plan_cluster(parse_config(base_config()), "prod")
    ud = server_node_boot(plan, plan.layout.nodes[0], "").user_data
    by_path = installed_files(ud)
    run = by_path["/usr/local/bin/sglang-server-run"]
    assert run["permissions"] == "0755" and run["content"].startswith("#!/usr/bin/env bash")
    assert run["source"] == "bundle" and run["content"] == shipped_file("sglang-server-run")
    assert "/etc/systemd/system/sglang-server@.service" in by_path
    boot = by_path[BOOTSTRAP_PATH]
    assert boot["source"] == "user_data" and boot["permissions"] == "0755"


def test_container_env_efa_rules() -> None:
    spec = parse_config(base_config())
    p5 = container_env(spec, CATALOG["p5.48xlarge"])
    assert p5["NCCL_NET_PLUGIN"] == "ofi" and p5["FI_EFA_USE_DEVICE_RDMA"] == "1"
    # Found at boot by sglang-server-run (the primary interface): gloo cannot take `^` lists.
    assert "NCCL_SOCKET_IFNAME" not in p5 and "GLOO_SOCKET_IFNAME" not in p5
    assert "LD_LIBRARY_PATH" not in p5  # extended at run time, keeping the image's own path
    g6e = container_env(spec, CATALOG["g6e.48xlarge"])
    assert g6e["NCCL_NET_PLUGIN"] == "ofi" and "FI_EFA_USE_DEVICE_RDMA" not in g6e
    dev = container_env(spec, CATALOG["g6e.xlarge"])
    assert "NCCL_NET_PLUGIN" not in dev and "FI_PROVIDER" not in dev


def test_no_host_efa_libraries_reach_the_container() -> None:
    """The EFA user space comes from the image: node.env carries no host library path, and the
    shipped run script mounts no /opt/amazon and overrides no LD_LIBRARY_PATH (the host's
    libfabric against an image's distro rdma-core fails on libefa symbol versions)."""
    plan = plan_cluster(parse_config(base_config()), "prod")
    env = server_node_env(plan, plan.layout.nodes[0], "", plan.runtime_for_plan())
    assert not [k for k in env if k.startswith("SGLANG_EFA")]
    run = installed_files(server_node_boot(plan, plan.layout.nodes[0], "").user_data)[
        "/usr/local/bin/sglang-server-run"
    ]
    code = [ln for ln in run["content"].splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in code if "/opt/amazon" in ln or "LD_LIBRARY_PATH" in ln]


def test_user_env_wins() -> None:
    spec = parse_config(base_config(server_env=["NCCL_DEBUG=WARN", "HF_HUB_ENABLE_HF_TRANSFER=1"]))
    env = container_env(spec, CATALOG["p5.48xlarge"])
    assert env["NCCL_DEBUG"] == "WARN" and env["HF_HUB_ENABLE_HF_TRANSFER"] == "1"


def test_env_file_refuses_quotes() -> None:
    with pytest.raises(ValueError, match="quotes"):
        env_file({"A": "it's"})


def _incompressible(n: int) -> str:
    """``n`` hex characters that gzip cannot shrink much (a hash chain, deterministic)."""
    out, h = [], b"seed"
    while sum(map(len, out)) < n:
        h = hashlib.sha256(h).digest()
        out.append(h.hex())
    return "".join(out)[:n]


def test_oversized_user_data_raises() -> None:
    big = ["--json-model-override-args", _incompressible(40000)]
    with pytest.raises(UserDataTooLargeError, match="gzipped"):
        server_user_data("n", {"A": "b"}, [ServerProcess(0, big, True)], {}, {}, {})


def test_user_data_limit_counts_gzipped_bytes() -> None:
    """40 KB of repetitive text gzips far below 16 KB and is accepted."""
    text = server_user_data("n", {"A": "b"}, [ServerProcess(0, ["--x", "a" * 40000], True)], {}, {}, {})
    assert len(text) > 40000 and len(pack(text)) < MAX_USER_DATA_BYTES


def test_planner_refuses_oversized_user_data_before_resources() -> None:
    big = "{" + _incompressible(30000) + "}"
    with pytest.raises(SpecError) as e:
        plan_cluster(parse_config(base_config(extra_server_args=["--json-model-override-args", big])), "t")
    assert e.value.key == "sglang-cluster:extra_server_args" and "16384" in e.value.message


def test_router_user_data_sglang_router_has_argv_packages_and_sync() -> None:
    plan = plan_cluster(parse_config(base_config(gateway="sglang-router")), "prod")
    boot = router_boot(plan, {0: "10.0.1.10"})
    doc = _cloud_config(boot.user_data)
    assert "python3-venv" in doc["packages"]
    files = {p: f["content"] for p, f in installed_files(boot.user_data).items()}
    argv = files["/etc/sglang/router.argv"].splitlines()
    assert argv == boot.processes[0]
    assert "http://10.0.1.10:30000" in argv
    unit = files["/etc/systemd/system/sglang-router-sync.service"]
    assert f"ExecStart={' '.join(boot.processes[1])}\n" in unit
    assert doc["runcmd"][-1][0] == BOOTSTRAP_PATH and "sglang-router-sync.service" in doc["runcmd"][-1]
    assert "/etc/sglang/gateway-workers.json" not in files
    assert "SGLANG_GATEWAY_PACKAGE=sglang-router==0.3.2" in files["/etc/sglang/node.env"]


def test_router_user_data_smg_has_manifest_and_no_sync() -> None:
    """smg (default) gets its workers from the discovery manifest, not its argv, and no sync."""
    plan = plan_cluster(parse_config(base_config()), "prod")
    boot = router_boot(plan, {0: "10.0.1.10"})
    doc = _cloud_config(boot.user_data)
    files = _files(doc)
    argv = files["/etc/sglang/router.argv"].splitlines()
    assert argv == boot.processes[0] and len(boot.processes) == 1
    assert argv[:2] == ["smg", "launch"] and "http://10.0.1.10:30000" not in argv
    manifest = json.loads(files[argv[argv.index("--discovery-file") + 1]])
    assert manifest == {
        "version": 1,
        "workers": [{"url": "http://10.0.1.10:30000", "worker_type": "regular"}],
    }
    # The one router bundle holds the sync unit too; smg never enables it, and nothing else
    # wants it (its only [Install] is WantedBy=multi-user.target, which needs an enable).
    assert doc["runcmd"][-1][0] == BOOTSTRAP_PATH
    assert "sglang-router-sync.service" not in doc["runcmd"][-1]
    installed = installed_files(boot.user_data)
    assert not [
        p
        for p, f in installed.items()
        if "sglang-router-sync" in f["content"] and "sglang-router-sync" not in p
    ]
    assert "SGLANG_GATEWAY_PACKAGE=smg==1.13.0" in files["/etc/sglang/node.env"]


@pytest.mark.parametrize(
    "stack", sorted(p.stem.removeprefix("Pulumi.") for p in STACKS_DIR.glob("Pulumi.*.yaml"))
)
def test_c_and_python_yaml_emitters_give_the_same_user_data(stack: str) -> None:
    """The plan renders with libyaml's C emitter when PyYAML has it; a deployer whose PyYAML
    lacks libyaml must get the same bytes, or `pulumi up` would replace every node."""
    assert yaml.__with_libyaml__, "PyYAML without libyaml: the fast path is not exercised"
    spec = parse_config(load_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml"))
    plan = plan_cluster(spec, stack)
    docs = [_cloud_config(server_node_boot(plan, n, "10.0.1.10").user_data) for n in plan.layout.nodes]
    docs.append(
        _cloud_config(router_boot(plan, {g: "10.0.1.10" for g in range(plan.layout.groups)}).user_data)
    )
    for doc in docs:
        assert cloud_config(doc, fast=True) == cloud_config(doc, fast=False)
