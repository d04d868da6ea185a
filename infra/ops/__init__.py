"""Operator commands around ``pulumi up``: ``preflight``, ``wait``, ``smoke`` and ``bench``.

They talk to a live AWS account or a live endpoint, so the Pulumi program never imports them
(``shared/ARCHITECTURE.md``: checks against the live account belong in an explicit command).
Each returns an exit code: 0 every check passed (warnings allowed), 1 a check failed, 2 bad
input (unknown stack, invalid spec, missing file).
"""
