"""Node bundles: deterministic content-addressed archives, what they hold, what user data keeps.

The archives are read back with the standard library's ``tarfile`` (the format GNU tar reads on
the node; the conformance rehearsal unpacks them with the real GNU tar).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from infra.mockrun import STACKS_DIR, load_stack_config
from infra.planning import cluster
from infra.planning.bundle import (
    KINDS,
    build,
    bundle,
    bundle_of,
    check_disjoint,
    installed_files,
    object_key,
)
from infra.planning.cluster import plan_cluster, router_boot, server_node_boot
from infra.planning.userdata import (
    BOOTSTRAP_PATH,
    BOOTSTRAP_SOURCE,
    BUNDLE_ENV_PATH,
    GROUP_DROP_IN,
    MAX_USER_DATA_BYTES,
    USERDATA_DIR,
    pack,
    shipped_file,
)
from infra.spec import SpecError, parse_config
from tests.conftest import STACKS, base_config
from tests.unit.test_userdata import _incompressible

BUCKET = "sglang-bundles-bucket-0123456789ab"


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


@pytest.mark.parametrize("kind", KINDS)
def test_archive_is_deterministic_and_content_addressed(kind: str) -> None:
    a, b = build(kind), build(kind)  # type: ignore[arg-type]  # KINDS holds Kind values
    assert a.data == b.data and a.sha256 == hashlib.sha256(gzip.decompress(a.data)).hexdigest()
    assert a.key == object_key(kind, a.sha256) == f"node-bundles/{kind}-{a.sha256}.tar.gz"
    members = _members(a.data)
    assert [m.name for m in members] == sorted(m.name for m in members)
    for m, f in zip(members, a.files, strict=True):
        assert m.isfile() and not m.name.startswith("/") and ".." not in m.name
        assert (m.uid, m.gid, m.mtime, m.mode) == (0, 0, 0, f.mode)
        assert "/" + m.name == f.path


def test_the_tar_is_the_same_bytes_gnu_tar_and_pythons_tarfile_read(tmp_path: Path) -> None:
    """The hand-written ustar archive lists the same members, modes and owner under GNU tar
    (what the node runs) as under ``tarfile``, with no warning."""
    b = bundle("server")
    (tmp_path / "b.tar.gz").write_bytes(b.data)
    proc = subprocess.run(
        ["tar", "-tvzf", str(tmp_path / "b.tar.gz")], capture_output=True, text=True, check=True
    )
    assert proc.stderr == ""
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert [r[-1] for r in rows] == [m.name for m in _members(b.data)]
    assert {r[1] for r in rows} == {"root/root"}
    modes = {"-rwxr-xr-x": 0o755, "-rw-r--r--": 0o644}
    assert [modes[r[0]] for r in rows] == [f.mode for f in b.files]
    assert [int(r[2]) for r in rows] == [len(f.content) for f in b.files]


def test_members_are_the_shipped_files_with_their_modes() -> None:
    files = {f.path: f for f in bundle("server").files}
    run = files["/usr/local/bin/sglang-server-run"]
    assert run.mode == 0o755 and run.content.decode() == shipped_file("sglang-server-run")
    assert files["/etc/systemd/system/sglang-server@.service"].mode == 0o644
    assert files["/usr/local/lib/sglang/sglang-lib.sh"].mode == 0o644
    router = {f.path for f in bundle("router").files}
    assert "/usr/local/bin/sglang-router-run" in router and "/usr/local/bin/sglang-server-run" not in router


def test_every_static_file_reaches_a_node() -> None:
    """Nothing of ``userdata/`` is dropped: each file is in a bundle or (bootstrap, group
    drop-in) in user data."""
    shipped = {f.path.rsplit("/", 1)[1] for k in KINDS for f in bundle(k).files}
    shipped |= {BOOTSTRAP_SOURCE, GROUP_DROP_IN[0], "sglang.logrotate", "logrotate-hourly.conf"}
    assert {p.name for p in USERDATA_DIR.iterdir() if p.is_file()} <= shipped


def test_a_changed_script_is_a_new_key() -> None:
    changed = build("server", lambda n: shipped_file(n) + ("# v2\n" if n == "sglang-server-run" else ""))
    assert changed.sha256 != bundle("server").sha256 and changed.key != bundle("server").key


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_keeps_only_what_differs_and_names_its_bundle(stack: str) -> None:
    spec = parse_config(load_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml"))
    plan = plan_cluster(spec, stack)
    runtime = cluster.Runtime(image=spec.image, bundle_bucket=BUCKET)
    uds = [server_node_boot(plan, n, "10.0.1.10", runtime).user_data for n in plan.layout.nodes]
    uds.append(router_boot(plan, {g: "10.0.1.10" for g in range(plan.layout.groups)}, BUCKET).user_data)
    for i, ud in enumerate(uds):
        b, env = bundle_of(ud)
        assert b.kind == ("router" if i == len(uds) - 1 else "server")
        assert env == {
            "SGLANG_BUNDLE_BUCKET": BUCKET,
            "SGLANG_BUNDLE_KEY": b.key,
            "SGLANG_BUNDLE_SHA256": b.sha256,
            "SGLANG_BUNDLE_REGION": plan.region,
        }
        files = installed_files(ud)
        written = {p for p, f in files.items() if f["source"] == "user_data"}
        check_disjoint(dict.fromkeys(written), b)
        # user data: /etc/sglang data, the bootstrap and (multi-node) the group drop-in only
        assert {p for p in written if not p.startswith("/etc/sglang/")} <= {BOOTSTRAP_PATH, GROUP_DROP_IN[1]}
        assert BUNDLE_ENV_PATH in written and files[BOOTSTRAP_PATH]["content"] == shipped_file(
            BOOTSTRAP_SOURCE
        )
        assert not [p for p in written if p.startswith("/usr/local/bin/")]
        assert len(pack(ud)) < 4096  # was ~14.5 KB for a multi-node GPU node


def test_check_disjoint_refuses_a_path_in_both() -> None:
    with pytest.raises(ValueError, match="sglang-server-run"):
        check_disjoint({"/usr/local/bin/sglang-server-run": None}, bundle("server"))


def test_a_script_change_changes_every_server_nodes_user_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash in user data is what makes ``user_data_replace_on_change`` replace the nodes
    when a script changes (tests/program/test_bundle_program.py checks the resource input)."""
    plan = plan_cluster(parse_config(base_config()), "prod")
    runtime = cluster.Runtime(image="img", bundle_bucket=BUCKET)
    before = [server_node_boot(plan, n, "10.0.1.10", runtime).user_data for n in plan.layout.nodes]
    router_before = router_boot(plan, {0: "10.0.1.10"}, BUCKET).user_data
    changed = build("server", lambda n: shipped_file(n) + ("# v2\n" if n == "sglang-wait-ready" else ""))
    monkeypatch.setattr(cluster, "bundle", lambda kind: changed if kind == "server" else bundle(kind))
    after = [server_node_boot(plan, n, "10.0.1.10", runtime).user_data for n in plan.layout.nodes]
    assert all(a != b and changed.sha256 in a for a, b in zip(after, before, strict=True))
    assert router_boot(plan, {0: "10.0.1.10"}, BUCKET).user_data == router_before


def test_users_get_the_room_back_for_extra_server_args() -> None:
    """~10 KB of incompressible ``extra_server_args`` fit now; with the scripts inline
    (~14.5 KB gzipped) the same stack was refused. Beyond the limit the refusal still names
    the key."""
    fits = "{" + _incompressible(20000) + "}"  # ~10 KB gzipped (hex digits: 4 bits a byte)
    plan = plan_cluster(
        parse_config(base_config(extra_server_args=["--json-model-override-args", fits])), "t"
    )
    ud = server_node_boot(plan, plan.layout.nodes[1], "10.0.1.10", cluster.WORST_CASE_RUNTIME).user_data
    assert 10000 < len(pack(ud)) <= MAX_USER_DATA_BYTES
    too_big = "{" + _incompressible(30000) + "}"
    with pytest.raises(SpecError) as e:
        plan_cluster(
            parse_config(base_config(extra_server_args=["--json-model-override-args", too_big])), "t"
        )
    assert e.value.key == "sglang-cluster:extra_server_args"


def test_tags_that_would_not_fit_an_s3_object_are_refused_before_anything_exists() -> None:
    from infra.planning.bundle import PROVIDER_TAG_KEYS
    from infra.program import BASE_TAGS

    assert set(PROVIDER_TAG_KEYS) == {*BASE_TAGS, "stack"}  # infra/program.py's default tags
    seven = [f"k{i}=v" for i in range(7)]
    plan_cluster(parse_config(base_config(tags=seven)), "t")
    with pytest.raises(SpecError) as e:
        plan_cluster(parse_config(base_config(tags=[*seven, "k7=v"])), "t")
    assert e.value.key == "sglang-cluster:tags" and "at most 7" in e.value.message
    plan_cluster(parse_config(base_config(tags=[*seven, "project=x"])), "t")  # overrides a default key
