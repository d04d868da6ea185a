"""Run inside .tools/parliament-venv: lint IAM policy documents with parliament.

stdin: JSON ``{name: policy document}``. stdout: JSON ``{name: [[issue, detail], ...]}``, every
finding parliament reports (its own auditors, community auditors off).
"""

import json
import sys

# Runs in its own venv (tools/setup-conformance.sh), where parliament is installed.
from parliament import analyze_policy_string  # pyright: ignore[reportMissingImports]

docs = json.load(sys.stdin)
out = {}
for name, doc in docs.items():
    policy = analyze_policy_string(json.dumps(doc), ignore_private_auditors=True)
    out[name] = [[f.issue, f.detail] for f in policy.findings]
json.dump(out, sys.stdout, default=str)
