"""Pulumi components: one ``ComponentResource`` per concern. Only these import ``pulumi_aws``."""
