"""The Pulumi program as a function: the real ``pulumi up`` and the offline plan both call it.

``__main__.py`` calls :func:`main`; tests and ``python -m infra plan`` call :func:`build` under
the SDK's mock runtime. Nothing here talks to AWS outside resources the engine manages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from infra.spec import PROJECT, SECRET_KEYS, SpecError, StackSpec, parse_config

if TYPE_CHECKING:
    from infra.planning.cluster import ClusterPlan

BASE_TAGS = {"managed-by": "pulumi", "project": PROJECT}


def read_config() -> dict[str, Any]:
    """Every ``sglang-cluster:*`` key the engine passed to the program, plus ``aws:region``.

    Declared keys are read through ``pulumi.Config``; keys set in the stack file but unknown to
    the spec are found in the runtime's config map too, so a typo is refused, not ignored.
    """
    from pulumi.runtime import config as runtime_config

    every = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    out: dict[str, Any] = {k: v for k, v in every.items() if k.startswith(f"{PROJECT}:")}
    cfg = pulumi.Config(PROJECT)
    for key in [*StackSpec.model_fields, *SECRET_KEYS]:
        value = cfg.get(key)
        if value is not None:
            out[f"{PROJECT}:{key}"] = value
    region = pulumi.Config("aws").get("region")
    if region:
        out["aws:region"] = region
    return out


def region_of(config: dict[str, Any]) -> str:
    """The ``aws:region`` config value.

    Raises:
        SpecError: when it is missing.
    """
    region = config.get("aws:region")
    if not region:
        raise SpecError("aws:region", "required: set it in the stack file (us-east-1, ...)")
    return str(region)


def build(stack: str, config: dict[str, Any], plan: ClusterPlan | None = None) -> dict[str, Any]:
    """Plan, then create every resource of the stack.

    Args:
        stack: the stack name.
        config: config as :func:`read_config` returns it.
        plan: the plan of exactly this stack and config when the caller has already made it
            (the offline plan does, to refuse a bad spec before the mock runtime starts);
            planning again would render every node's worst-case user data a second time.

    Returns:
        The stack outputs (Outputs and plain values).

    Raises:
        SpecError: before any resource exists, when the spec or layout is invalid.
    """
    from pulumi.runtime import is_config_secret

    from infra.plain_secrets import refuse_plain_secret_keys, refuse_secrets_in_spec
    from infra.planning.cluster import plan_cluster

    region = region_of(config)
    # The engine marks `pulumi config set --secret` keys; secrets in plain text are refused
    # before anything is planned or created.
    refuse_plain_secret_keys(config, [k for k in config if is_config_secret(k)], stack)
    spec: StackSpec = parse_config(config)
    refuse_secrets_in_spec(spec, stack)
    present = frozenset(k for k in SECRET_KEYS if config.get(f"{PROJECT}:{k}"))
    if plan is None:
        plan = plan_cluster(spec, stack, region, present)
    from infra.planning.endpoint import endpoint_warnings
    from infra.planning.reachability import reachability_warnings

    warnings = [*reachability_warnings(spec), *endpoint_warnings(spec, "router_api_key" in present)]
    for warning in warnings:
        pulumi.log.warn(warning)  # shown in `pulumi up`'s preview, before anything is created

    import pulumi_aws as aws

    from infra.components.cluster import SglangCluster

    provider = aws.Provider(
        "aws",
        region=region,
        default_tags=aws.ProviderDefaultTagsArgs(tags={**BASE_TAGS, "stack": stack, **spec.tag_map}),
    )
    # Secret values stay Outputs marked secret from config to the SSM parameter; only their
    # parameter names reach user data and outputs.
    project_config = pulumi.Config(PROJECT)
    secrets: dict[str, pulumi.Output[str]] = {}
    for key in sorted(present):
        value = project_config.get_secret(key)
        if value is not None:
            secrets[key] = value
    if spec.backend == "slurm":
        from infra.components.slurm_cluster import SlurmServingCluster

        # Secrets are refused on this backend before anything exists (plan_cluster).
        slurm_stack = SlurmServingCluster("sglang", plan, opts=pulumi.ResourceOptions(provider=provider))
        return slurm_stack.outputs
    cluster = SglangCluster("sglang", plan, secrets, opts=pulumi.ResourceOptions(provider=provider))
    return cluster.outputs


def main() -> None:
    """Entry point of ``pulumi up``: build and export; a bad spec stops with one message."""
    try:
        outputs = build(pulumi.get_stack(), read_config())
    except SpecError as e:
        raise pulumi.RunError(f"invalid stack config: {e}") from None
    for key, value in outputs.items():
        pulumi.export(key, value)
