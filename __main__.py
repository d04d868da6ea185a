"""Pulumi entry point: read the stack's spec, build the cluster, export. Nothing else."""

from infra.program import main

main()
