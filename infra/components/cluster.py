"""The top component: network, GPU fleet and router wired together, and the stack outputs."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.components.network import Network
from infra.components.router import Router
from infra.components.server_fleet import ServerFleet
from infra.planning.cluster import ClusterPlan, worker_urls


class SglangCluster(pulumi.ComponentResource):
    """One serving cluster.

    Attributes:
        outputs: the stack outputs (see :meth:`_outputs`), Outputs or plain values.
    """

    def __init__(
        self, name: str, plan: ClusterPlan, region: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sglang:index:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        net = Network(f"{name}-net", plan, region, opts=child)
        fleet = ServerFleet(f"{name}-servers", plan, net.node_subnet_id, net.node_sg_id, opts=child)
        router = Router("router", plan, fleet.head_ips, net.router_subnet_id, net.router_sg_id, opts=child)
        self.outputs = self._outputs(plan, net, fleet, router)
        self.register_outputs(self.outputs)

    @staticmethod
    def _outputs(plan: ClusterPlan, net: Network, fleet: ServerFleet, router: Router) -> dict[str, Any]:
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
            "total_gpus": plan.estimates.gpus,
            "hourly_cost_usd": plan.estimates.hourly_cost_usd,
            "price_source": plan.estimates.price_source,
        }
