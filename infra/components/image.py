"""Serving image: this stack's ECR repository and how the image gets there.

Modes (``image_source``; ``auto`` is resolved by :mod:`infra.planning.image` before this
component runs: ``build`` for servers spanning several nodes of an EFA type, else ``uri``):
- ``uri``: run ``image`` as given; no repository is created.
- ``mirror``: copy ``image`` (for example ``lmsysorg/sglang:v0.5.23``) unchanged into the
  stack's repository, so nodes pull from ECR in their own region (``docker/mirror/Dockerfile``
  is a single ``FROM``).
- ``build``: build ``docker/Dockerfile`` on top of ``image`` (build arg ``BASE_IMAGE``): the
  EFA installer's libfabric, rdma-core and aws-ofi-nccl, ``NCCL_NET_PLUGIN=ofi``, and a build
  step that fails when the plugin cannot load; then push it.

The repository scans on push, expires untagged images, and ``force_delete`` lets
``pulumi destroy`` remove it with its images
(https://www.pulumi.com/registry/packages/aws/api-docs/ecr/repository/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.planning import flags, pd
from infra.planning.cluster import ClusterPlan

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT_ROOT / "docker"
BUILD_DIR = DOCKER_DIR.relative_to(PROJECT_ROOT).as_posix()
"""Build context as the provider gets it: ``docker``, relative to the project directory.

pulumi-docker 5.x diffs ``build`` as plain inputs (``provider/provider.go`` ``Diff``), so an
absolute path (this checkout's) would rebuild and push the 20-30 GB image whenever ``pulumi up``
runs from another checkout (CI, a colleague); the new digest changes the user data and
replaces every GPU node. A relative path is stable: the engine starts provider plugins in the
project directory (pulumi/pulumi ``sdk/go/common/resource/plugin/plugin.go``: ``cmd.Dir = pwd``,
the project root; read 2026-11-21)."""
UNTAGGED_DAYS = 7


def lifecycle_policy() -> str:
    """Expire untagged images ``UNTAGGED_DAYS`` days after push."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {UNTAGGED_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_DAYS,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )


def image_tag(plan: ClusterPlan) -> str:
    """Tag in the stack's repository: the public tag when mirroring, ``sglang-<version>`` when
    building."""
    if plan.spec.image_source == "mirror":
        ref = plan.spec.image.split("@")[0]
        last = ref.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"
    return f"sglang-{flags.SGLANG_VERSION}"


class ServingImage(pulumi.ComponentResource):
    """The image every server node runs.

    Attributes:
        image_ref: Output of the reference nodes pull (``repo@sha256:...`` for ECR modes).
        repository_arn: the repository ARN, ``None`` in ``uri`` mode.
    """

    def __init__(self, name: str, plan: ClusterPlan, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("sglang:aws:ServingImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = plan.spec
        self.repository_arn: pulumi.Output[str] | None = None
        if not plan.uses_ecr:
            self.image_ref: pulumi.Output[str] = pulumi.Output.from_input(spec.image)
            self.register_outputs({"image_ref": self.image_ref})
            return

        repo = aws.ecr.Repository(
            f"{name}-repo",
            force_delete=True,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            image_tag_mutability="MUTABLE",
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle", repository=repo.name, policy=lifecycle_policy(), opts=child
        )
        # parent=self: the invoke runs with the stack's explicit provider (its region), not an
        # ambient default provider.
        token = aws.ecr.get_authorization_token_output(
            registry_id=repo.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        registry = docker.RegistryArgs(
            server=repo.repository_url,
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        if spec.image_source == "build":
            build = docker.DockerBuildArgs(
                context=BUILD_DIR,
                dockerfile=f"{BUILD_DIR}/Dockerfile",
                platform="linux/amd64",
                args={
                    "BASE_IMAGE": spec.image,
                    "SGLANG_VERSION": flags.SGLANG_VERSION,
                    **pd.image_build_args(spec),  # PD stacks only: the transfer engine
                },
            )
        else:
            build = docker.DockerBuildArgs(
                context=f"{BUILD_DIR}/mirror",
                dockerfile=f"{BUILD_DIR}/mirror/Dockerfile",
                platform="linux/amd64",
                args={"SOURCE_IMAGE": spec.image},
            )
        image = docker.Image(
            f"{name}-image",
            image_name=repo.repository_url.apply(lambda u: f"{u}:{image_tag(plan)}"),
            build=build,
            registry=registry,
            opts=child,
        )
        self.repository_arn = repo.arn
        self.image_ref = image.repo_digest
        self.register_outputs({"image_ref": self.image_ref, "repository_arn": repo.arn})
