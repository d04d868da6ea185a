"""What a change of ``endpoint`` between ``https`` and ``private`` does on a live stack.

``internal`` of an ``aws.lb.LoadBalancer`` cannot change in place: the engine creates a new
load balancer first, which replaces the listener (its ``load_balancer_arn`` changes). The
router's target group stays, and an Application Load Balancer target group belongs to at most
one load balancer ("Load balancers per target group: 1", ALB quotas,
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html,
read 2026-11; the API answers ``TargetGroupAssociationLimit``). A listener created before the
old one is deleted would fail there and leave both load balancers behind, so the listener is
deleted first.

Under the SDK's mocks (no engine diff runs here): the two programs differ in ``internal`` and
share the target group's inputs, and the listener carries ``deleteBeforeReplace`` as the engine
receives it in ``RegisterResourceRequest``.
"""

from __future__ import annotations

from tests.program.test_endpoint_program import LB, LISTENER, TG, run


def test_switching_https_and_private_replaces_the_load_balancer_but_not_the_target_group() -> None:
    https, private = run(), run(endpoint="private")
    (lb_a,), (lb_b,) = https.of_type(LB), private.of_type(LB)
    assert (lb_a.inputs["internal"], lb_b.inputs["internal"]) == (False, True)
    (tg_a,), (tg_b,) = https.of_type(TG), private.of_type(TG)
    assert tg_a.name == tg_b.name and tg_a.inputs == tg_b.inputs


def test_listener_is_deleted_before_its_replacement_is_created() -> None:
    for r in (run(), run(endpoint="private"), run(endpoint="private", certificate_arn="")):
        (listener,) = r.of_type(LISTENER)
        assert listener.delete_before_replace, listener.name
