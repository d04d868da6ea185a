"""The stack spec: a typed, validated model of one stack file's ``sglang-cluster:*`` config.

One module per concern, each a pydantic class of config keys with their field rules and a
``check(spec)`` of the rules between keys:

- :mod:`~infra.spec.model`: the model (checkpoint, served name, shape);
- :mod:`~infra.spec.layout`: TP/PP/DP/EP, attention DP, replicas, servers per node;
- :mod:`~infra.spec.compute`: GPU instance type and count, AMI, root volume, capacity, placement group;
- :mod:`~infra.spec.network`: VPC, subnets, AZ, client CIDRs;
- :mod:`~infra.spec.storage`: FSx for Lustre model store and its S3 association;
- :mod:`~infra.spec.image`: serving image and how the stack gets it;
- :mod:`~infra.spec.server`: ``sglang.launch_server`` ports, memory, extra args, env, EFA check;
- :mod:`~infra.spec.router`: the router;
- :mod:`~infra.spec.backend`: which backend runs the servers;
- :mod:`~infra.spec.stack`: :class:`StackSpec` (all of the above, plus tags and log retention),
  :func:`parse_config`, :func:`check_region`, the secret keys;
- :mod:`~infra.spec.base`: :class:`SpecError`, :func:`qualified`, the shared base class.

Rules that need the instance catalog, the model shape and the layout live in
:mod:`infra.planning.layout`. Everything raises :class:`SpecError`, whose message names the config
key, the value and what is allowed.
"""

from infra.spec.base import PROJECT, SpecError, qualified
from infra.spec.server import OWNED_SERVER_DESTS, OWNED_SERVER_FLAGS, REFUSED_SERVER_FLAGS
from infra.spec.stack import LOG_RETENTION_DAYS, SECRET_KEYS, StackSpec, check_region, parse_config
from infra.spec.storage import FSX_THROUGHPUTS

__all__ = [
    "FSX_THROUGHPUTS",
    "LOG_RETENTION_DAYS",
    "OWNED_SERVER_DESTS",
    "OWNED_SERVER_FLAGS",
    "PROJECT",
    "REFUSED_SERVER_FLAGS",
    "SECRET_KEYS",
    "SpecError",
    "StackSpec",
    "check_region",
    "parse_config",
    "qualified",
]
