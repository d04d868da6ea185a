"""The top component: image, identity, network, model store, GPU fleet and router wired
together, and the stack outputs."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.components.bundle import NodeBundles
from infra.components.endpoint import Endpoint
from infra.components.identity import NodeIdentity
from infra.components.image import ServingImage
from infra.components.model_store import ModelStore
from infra.components.network import Network
from infra.components.router import Router
from infra.components.server_fleet import ServerFleet
from infra.planning.cluster import ClusterPlan, Runtime, worker_urls


class SglangCluster(pulumi.ComponentResource):
    """One serving cluster.

    Attributes:
        outputs: the stack outputs, Outputs or plain values; never a secret value (secrets
            are exported by SSM parameter name only).
    """

    def __init__(
        self,
        name: str,
        plan: ClusterPlan,
        secrets: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sglang:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        image = ServingImage(f"{name}-image", plan, opts=child)
        # Static scripts and units travel as one verified bundle per node kind (user data limit).
        bundles = NodeBundles(f"{name}-bundles", plan, opts=child)
        identity = NodeIdentity(
            f"{name}-identity",
            plan,
            image.repository_arn,
            secrets,
            opts=child,
            bundle_arns=bundles.object_arns,
        )
        net = Network(f"{name}-net", plan, plan.region, opts=child)
        store = None
        if plan.uses_model_store:
            store = ModelStore(
                f"{name}-store", plan, net.vpc_id, net.node_subnet_id, net.node_sg_id, opts=child
            )
            runtime = pulumi.Output.all(
                image.image_ref, store.dns_name, store.mount_name, bundles.bucket_name
            ).apply(lambda a: Runtime(image=a[0], fsx_dns=a[1], fsx_mount_name=a[2], bundle_bucket=a[3]))
        else:
            runtime = pulumi.Output.all(image.image_ref, bundles.bucket_name).apply(
                lambda a: Runtime(image=a[0], bundle_bucket=a[1])
            )
        fleet = ServerFleet(
            f"{name}-servers",
            plan,
            net.node_subnet_id,
            net.node_sg_id,
            identity.server_profile_arn,
            runtime,
            depends_on=[
                *identity.server_ready,
                *net.ready,
                *(store.ready if store else []),
                *bundles.ready["server"],
            ],
            opts=child,
        )
        router = Router(
            "router",
            plan,
            fleet.head_ips,
            net.router_subnet_id,
            net.router_sg_id,
            identity.router_profile_arn,
            bundle_bucket=bundles.bucket_name,
            # The router no longer waits for a GPU instance (worker addresses come from the
            # nodes' interfaces), so it waits for the nodes' route itself, as every instance does.
            depends_on=[*identity.router_ready, *net.router_ready, *net.ready, *bundles.ready["router"]],
            opts=child,
        )
        endpoint = None
        if plan.spec.endpoint != "http":
            endpoint = Endpoint(f"{name}-endpoint", plan, net, router.instance.id, opts=child)
        self.outputs = self._outputs(plan, net, fleet, router, image, identity, store)
        if endpoint is not None:
            self.outputs.update(self._endpoint_outputs(plan, endpoint))
        self.register_outputs(self.outputs)

    @staticmethod
    def _endpoint_outputs(plan: ClusterPlan, endpoint: Endpoint) -> dict[str, Any]:
        """Outputs behind a load balancer: the client URLs through it (``https://`` with a
        certificate) and its DNS name for the ``endpoint_domain`` record; they replace the
        router-address URLs of :meth:`_outputs` (``metrics_url`` stays the router's private
        address, reachable through Session Manager only)."""
        spec = plan.spec
        url = endpoint.url
        return {
            "router_url": url,
            "openai_base_url": url.apply(lambda u: f"{u}/v1"),
            "health_url": url.apply(lambda u: f"{u}/health"),
            "readiness_url": url.apply(lambda u: f"{u}/readiness"),
            "load_balancer_dns_name": endpoint.dns_name,
            "endpoint": {
                "kind": spec.endpoint,
                "url": url,
                "load_balancer_dns_name": endpoint.dns_name,
                "domain": spec.endpoint_domain or None,
                "certificate_arn": spec.certificate_arn or None,
            },
        }

    @staticmethod
    def _outputs(
        plan: ClusterPlan,
        net: Network,
        fleet: ServerFleet,
        router: Router,
        image: ServingImage,
        identity: NodeIdentity,
        store: ModelStore | None,
    ) -> dict[str, Any]:
        spec = plan.spec
        router_url = router.address.apply(lambda a: f"http://{a}:{spec.router_port}")
        groups = sorted(fleet.head_ips)
        server_urls = pulumi.Output.all(*[fleet.head_ips[g] for g in groups]).apply(
            lambda ips: worker_urls(plan, dict(zip(groups, ips, strict=True)))
        )
        nodes = {
            name: {"instance_id": inst.id, "private_ip": inst.private_ip}
            for name, inst in fleet.instances.items()
        }
        nodes["router"] = {
            "instance_id": router.instance.id,
            "private_ip": router.instance.private_ip,
        }
        return {
            "router_url": router_url,
            "openai_base_url": router_url.apply(lambda u: f"{u}/v1"),
            "health_url": router_url.apply(lambda u: f"{u}/health"),
            "metrics_url": router.address.apply(
                lambda a: f"http://{a}:{spec.router_prometheus_port}/metrics"
            ),
            "served_model_name": spec.served_name,
            "server_urls": server_urls,
            "nodes": nodes,
            "placement_group": fleet.placement_group,
            "vpc_id": net.vpc_id,
            "image": image.image_ref,
            "model_store": (
                {
                    "file_system_id": store.file_system_id,
                    "dns_name": store.dns_name,
                    "mount_name": store.mount_name,
                    "capacity_gib": plan.fsx_capacity_gib,
                }
                if store
                else None
            ),
            "log_group": identity.log_group_name,
            "secret_parameters": dict(plan.secret_params),
            "total_gpus": plan.estimates.gpus,
            "hourly_cost_usd": plan.estimates.hourly_cost_usd,
            "price_source": plan.estimates.price_source,
            "capacity": {"kind": plan.capacity.kind, "reservation_id": plan.capacity.reservation_id or None},
        }
