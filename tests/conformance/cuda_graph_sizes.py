"""Runs under .tools/sglang-resolve-venv: SGLang 0.5.23's own CUDA graph batch-size lists.

stdin: {"decode_max_bs": [...], "prefill_max_bs": [...]}; stdout: {"decode": {bs: n},
"prefill": {bs: n}} with n the number of graphs SGLang captures. The decode generator reads two
settings through ``resolving_view``; a namespace with SGLang's defaults for them (no padding
turned off, no speculative decoding) stands for the resolved server args.
"""

import json
import sys
from types import SimpleNamespace

# Installed in .tools/sglang-resolve-venv only (tools/setup-conformance.sh), not in .venv.
from sglang.srt.arg_groups.cuda_graph_hook import (  # pyright: ignore[reportMissingImports]
    generate_decode_cuda_graph_batch_sizes,
    generate_prefill_cuda_graph_batch_sizes,
)

req = json.load(sys.stdin)
args = SimpleNamespace(disable_cuda_graph_padding=False, speculative_algorithm=None)
json.dump(
    {
        "decode": {
            str(b): len(generate_decode_cuda_graph_batch_sizes(args, b)) for b in req["decode_max_bs"]
        },
        "prefill": {str(b): len(generate_prefill_cuda_graph_batch_sizes(b)) for b in req["prefill_max_bs"]},
    },
    sys.stdout,
)
