"""``python -m infra bench``: SGLang's own serving benchmark with seed 000's matrix, fixed.

Runs ``python -m sglang.benchmark.serving`` (the module of the pinned SGLang 0.5.23; the old
``sglang.bench_serving`` path only re-exports it with a FutureWarning) once per point of the
matrix, collects the JSON lines it appends to ``--output-file``, prints one table (median and
p99 of TTFT, ITL and end-to-end latency; output tokens/s; requests/s) and draws PNG plots under
``results/``.

Seed 000's ``bench.sh`` matrix (``shared/reference/sglang-serving.md``), fixed:

- full flag names (``--random-input-len``, not the abbreviation ``--random-input``);
- ``--random-range-ratio 1``: 0.5.23's default 0.0 draws each length uniformly from 1..N
  (``sglang/benchmark/datasets/common.py`` ``compute_random_lens``), so the lengths are what
  the table says;
- no download at run time: the random dataset samples its prompt text from ShareGPT and
  downloads it from the hub when ``--dataset-path`` is not a JSON file
  (``datasets/random.py``). With ``--sharegpt PATH`` (a local file or ``/fsx/...``) the runs
  use it; without it the random runs use ``random-ids`` (token ids, no file at all) and the
  ``sharegpt`` type is refused.

The API key goes to the benchmark as ``OPENAI_API_KEY`` in its environment (0.5.23's
``get_auth_headers`` sends it as a bearer token), never on its command line.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

BENCH_MODULE = "sglang.benchmark.serving"
"""The serving benchmark of SGLang 0.5.23 (``python -m sglang.benchmark.serving``)."""

TYPES: tuple[str, ...] = ("throughput", "prefill", "decode", "latency", "concurrency", "sharegpt")

PREFILL_INPUT_LENS = (128, 512, 1024, 2048, 4096, 8192, 16384)
DECODE_OUTPUT_LENS = (128, 256, 512, 1024)
CONCURRENCY_LEVELS = (1, 4, 16, 64, 256)

METRICS: tuple[tuple[str, str], ...] = (
    ("median_ttft_ms", "TTFT med ms"),
    ("p99_ttft_ms", "TTFT p99 ms"),
    ("median_itl_ms", "ITL med ms"),
    ("p99_itl_ms", "ITL p99 ms"),
    ("median_e2e_latency_ms", "E2E med ms"),
    ("p99_e2e_latency_ms", "E2E p99 ms"),
    ("output_throughput", "out tok/s"),
    ("request_throughput", "req/s"),
)
"""Result keys of 0.5.23's JSON line (``benchmark/serving.py``, ``result = {...}``) and their
column titles."""


class BenchError(Exception):
    """A run cannot start or produced nothing; the message is one line."""


@dataclass(frozen=True)
class Run:
    """One point of the matrix: one benchmark invocation.

    Attributes:
        type: the matrix type (``throughput``, ...). label: the point (``in=512 out=256``).
        args: the benchmark's flags for this point (without base URL, model and output file).
        concurrency: ``--max-concurrency`` (``None`` = unlimited).
    """

    type: str
    label: str
    args: tuple[str, ...]
    concurrency: int | None = None

    @property
    def slug(self) -> str:
        """File-name part: ``concurrency-c16``."""
        return f"{self.type}-" + "".join(ch if ch.isalnum() else "-" for ch in self.label).strip("-")


def _random(input_len: int, output_len: int, prompts: int, rate: str, sharegpt: str) -> tuple[str, ...]:
    data = (
        ("--dataset-name", "random", "--dataset-path", sharegpt)
        if sharegpt
        else ("--dataset-name", "random-ids")
    )
    return (
        *data,
        "--random-input-len",
        str(input_len),
        "--random-output-len",
        str(output_len),
        "--random-range-ratio",
        "1",
        "--num-prompts",
        str(prompts),
        "--request-rate",
        rate,
    )


def matrix(types: Sequence[str], sharegpt: str = "") -> list[Run]:
    """The runs of seed 000's ``bench.sh`` for ``types``, with full flag names.

    - throughput: random 512 in / 256 out, 100 prompts, ``--request-rate inf``;
    - prefill: input 128..16384, output 1, rate 4 (TTFT against input length);
    - decode: input 128, output 128..1024, rate 4 (ITL against output length);
    - latency: 512 in / 128 out, 50 prompts, rate 1 (minimal load);
    - concurrency: 512 / 256 at ``--max-concurrency`` 1, 4, 16, 64, 256 (4 x c prompts, at
      least 32);
    - sharegpt: 500 conversations of the ShareGPT file.

    Raises:
        BenchError: an unknown type, or ``sharegpt`` without a local ShareGPT file.
    """
    runs: list[Run] = []
    for t in types:
        if t not in TYPES:
            raise BenchError(f"unknown benchmark type {t!r}; known: {', '.join(TYPES)}")
        if t == "throughput":
            runs.append(Run(t, "in=512 out=256 rate=inf", _random(512, 256, 100, "inf", sharegpt)))
        elif t == "prefill":
            runs += [Run(t, f"in={n} out=1", _random(n, 1, 50, "4", sharegpt)) for n in PREFILL_INPUT_LENS]
        elif t == "decode":
            runs += [
                Run(t, f"in=128 out={n}", _random(128, n, 50, "4", sharegpt)) for n in DECODE_OUTPUT_LENS
            ]
        elif t == "latency":
            runs.append(Run(t, "in=512 out=128 rate=1", _random(512, 128, 50, "1", sharegpt)))
        elif t == "concurrency":
            for c in CONCURRENCY_LEVELS:
                args = (*_random(512, 256, max(32, 4 * c), "inf", sharegpt), "--max-concurrency", str(c))
                runs.append(Run(t, f"c={c}", args, concurrency=c))
        else:
            if not sharegpt:
                raise BenchError(
                    "the sharegpt type needs the ShareGPT file locally: --sharegpt PATH "
                    "(ShareGPT_V3_unfiltered_cleaned_split.json, e.g. on /fsx/datasets/); "
                    "nothing is downloaded at run time"
                )
            runs.append(
                Run(
                    t,
                    "sharegpt 500",
                    ("--dataset-name", "sharegpt", "--dataset-path", sharegpt, "--num-prompts", "500"),
                )
            )
    return runs


def bench_argv(run: Run, base_url: str, model: str, tokenizer: str, output_file: str) -> list[str]:
    """Full argv after ``python -m sglang.benchmark.serving`` for one run.

    ``--backend sglang`` sends SGLang's native ``/generate`` through the router; ``--model``
    is the served name and ``--tokenizer`` where the tokenizer files are (``/fsx/models/<id>``
    on a GPU node), so nothing is fetched from the hub. The module's ``/generate`` body has no
    ``model`` (``--model`` only picks the tokenizer and the report's name), and smg 1.13.0 with
    worker discovery (the default gateway) refuses such a body with 400 ``missing_model``:
    ``--extra-request-body '{"model": ...}'`` adds it (0.5.23 spreads that JSON into the body;
    ``tests/conformance/test_gateway_native_generate.py``).
    """
    argv = ["--backend", "sglang", "--base-url", base_url]
    if model:
        argv += ["--model", model, "--extra-request-body", json.dumps({"model": model})]
    if tokenizer:
        argv += ["--tokenizer", tokenizer]
    argv += [*run.args, "--seed", "1", "--disable-tqdm", "--output-file", output_file]
    return argv


def module_available(python: str) -> bool:
    """True when ``python`` can find :data:`BENCH_MODULE` (``importlib.util.find_spec``)."""
    code = f"import importlib.util,sys; sys.exit(0 if importlib.util.find_spec({BENCH_MODULE!r}) else 3)"
    try:
        return (
            subprocess.run([python, "-c", code], capture_output=True, timeout=120, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def head_node_hint(
    runs: Sequence[Run],
    base_url: str,
    model: str,
    tokenizer: str,
    image: str,
    instance_id: str,
    region: str,
    keyed_server_url: str = "",
) -> list[str]:
    """How to run the matrix on the head node (rank 0 of server 0) through SSM: the serving
    image carries SGLang 0.5.23, the node mounts FSx (tokenizer and ShareGPT file there), and
    results land on ``/fsx/bench/`` for ``python -m infra bench --results DIR`` afterwards.

    ``keyed_server_url``: set when the router needs an API key. A GPU node's role cannot
    decrypt the router key (the stack's KMS key policy gives it to the router role only) and a
    key in an SSM command's parameters would stay in the command history, so the runs then
    measure rank 0 of server 0 directly at this URL (without the router) and say so."""
    notes: list[str] = []
    if keyed_server_url:
        base_url = keyed_server_url
        notes.append(
            f"  (the router needs an API key the GPU node cannot read: these runs measure server 0 at "
            f"{keyed_server_url} directly, without the router)"
        )
    cmds = ["mkdir -p /fsx/bench"]
    for r in runs:
        argv = bench_argv(r, base_url, model, tokenizer, f"/fsx/bench/{r.slug}.jsonl")
        cmds.append(
            f"docker run --rm --network host -v /fsx:/fsx {image} python3 -m {BENCH_MODULE} "
            + " ".join(shlex.quote(a) for a in argv)
        )
    reg = f" --region {region}" if region else ""
    return [
        f"{BENCH_MODULE} is not importable here; run the matrix on the head node through SSM:",
        f"  aws ssm send-command --instance-ids {instance_id or 'INSTANCE_ID'} --document-name AWS-RunShellScript"
        f"{reg} --timeout-seconds 7200 --parameters {shlex.quote(json.dumps({'commands': cmds}))}",
        *notes,
        "  (the instance id: `pulumi stack output nodes --stack STACK`, server-g0-r0.instance_id)",
        "  then copy /fsx/bench/*.jsonl here (aws s3 cp through a bucket, or an SSM session) and run:",
        "  python -m infra bench --results DIR",
    ]


@dataclass
class Result:
    """One benchmark JSON line with the run it came from."""

    type: str
    label: str
    concurrency: int | None
    data: dict[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> float | None:
        v = self.data.get(key)
        return (
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None
        )


def load_results(directory: Path) -> list[Result]:
    """Every ``<type>-<point>.jsonl`` under ``directory`` (the last line of each: the module
    appends), ordered by type then point.

    Raises:
        BenchError: no file, or a file whose last line is not a JSON object.
    """
    results: list[Result] = []
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise BenchError(f"no benchmark results (*.jsonl) in {directory}")
    for f in files:
        lines = [ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
        try:
            doc = json.loads(lines[-1]) if lines else None
        except ValueError as e:
            raise BenchError(f"{f}: the last line is not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise BenchError(f"{f}: no JSON object")
        kind = f.stem.split("-", 1)[0]
        conc = doc.get("max_concurrency")
        label = _label(kind, doc)
        results.append(Result(kind, label, int(conc) if isinstance(conc, int) else None, doc))
    order = {t: i for i, t in enumerate(TYPES)}
    results.sort(key=lambda r: (order.get(r.type, 99), r.concurrency or 0, _lens(r.data)))
    return results


def _lens(doc: Mapping[str, Any]) -> tuple[int, int]:
    return int(doc.get("random_input_len") or 0), int(doc.get("random_output_len") or 0)


def _label(kind: str, doc: Mapping[str, Any]) -> str:
    if kind == "concurrency":
        return f"c={doc.get('max_concurrency')}"
    if str(doc.get("dataset_name", "")) == "sharegpt":
        return f"sharegpt {doc.get('completed', '?')}"
    i, o = _lens(doc)
    return f"in={i} out={o} rate={doc.get('request_rate')}"


def render_results(results: Sequence[Result], out: TextIO | None = None) -> None:
    """One table: type, point, completed, then median and p99 of TTFT, ITL, E2E latency (ms),
    output tokens/s and requests/s."""
    from rich import box
    from rich.table import Table

    from infra.ops.report import console

    table = Table(title="SGLang serving benchmark (sglang.benchmark.serving 0.5.23)", box=box.SIMPLE)
    for col in ("TYPE", "POINT", "DONE", *(t for _, t in METRICS)):
        table.add_column(col, justify="left" if col in ("TYPE", "POINT") else "right", no_wrap=True)
    for r in results:
        cells = [_fmt(r.metric(k)) for k, _ in METRICS]
        table.add_row(r.type, r.label, str(r.data.get("completed", "")), *cells)
    console(out).print(table)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}"


PLOT_SERIES: dict[str, tuple[tuple[str, str], ...]] = {
    "throughput": (("output_throughput", "output tok/s"), ("request_throughput", "requests/s")),
    "latency": (
        ("median_ttft_ms", "TTFT median"),
        ("p99_ttft_ms", "TTFT p99"),
        ("median_itl_ms", "ITL median"),
        ("p99_itl_ms", "ITL p99"),
        ("median_e2e_latency_ms", "E2E median"),
        ("p99_e2e_latency_ms", "E2E p99"),
    ),
}
"""Series of the concurrency plots: ``(result key, legend label)``."""


def plot_concurrency(results: Sequence[Result], directory: Path) -> dict[Path, list[str]]:
    """PNG plots of throughput and latency against ``--max-concurrency`` (log2 x axis).

    Writes ``concurrency-throughput.png`` and ``concurrency-latency.png`` in ``directory``;
    each PNG carries its series labels in a ``Series`` text chunk (matplotlib ``metadata``).

    Returns:
        ``{path: series labels}`` of the files written (empty without concurrency results).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(
        (r for r in results if r.type == "concurrency" and r.concurrency), key=lambda r: r.concurrency or 0
    )
    if not points:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    xs = [float(r.concurrency or 0) for r in points]
    written: dict[Path, list[str]] = {}
    for name, series in PLOT_SERIES.items():
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        # Requests/s is two orders of magnitude below tokens/s: its own axis on the right.
        right = ax.twinx() if name == "throughput" else None
        labels: list[str] = []
        handles: list[Any] = []
        for i, (key, label) in enumerate(series):
            ys = [r.metric(key) for r in points]
            if all(y is None for y in ys):
                continue
            axis = right if right is not None and key == "request_throughput" else ax
            (line,) = axis.plot(
                xs, [math.nan if y is None else y for y in ys], marker="o", label=label, color=f"C{i}"
            )
            handles.append(line)
            labels.append(label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(int(x)) for x in xs])
        ax.set_xlabel("max concurrency (requests in flight)")
        if right is not None:
            ax.set_ylabel("output tokens/s")
            right.set_ylabel("requests/s")
        else:
            ax.set_yscale("log")  # ITL (ms) and E2E (s) on one chart
            ax.set_ylabel("milliseconds (log scale)")
        ax.set_title(f"{name.capitalize()} vs concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles, labels, loc="upper left", fontsize="small")
        path = directory / f"concurrency-{name}.png"
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Series": json.dumps(labels), "Software": "infra bench"})
        plt.close(fig)
        written[path] = labels
    return written


def run_matrix(
    runs: Sequence[Run],
    base_url: str,
    model: str,
    tokenizer: str,
    directory: Path,
    python: str = sys.executable,
    api_key: str = "",
    out: TextIO | None = None,
) -> list[Path]:
    """Run every point with ``python -m sglang.benchmark.serving`` and return the JSONL files.

    Each run writes ``<directory>/<slug>.jsonl`` (an old file is replaced, the module appends).

    Raises:
        BenchError: a run exits non-zero (its last output line in the message).
    """
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if api_key:
        env["OPENAI_API_KEY"] = api_key
    files: list[Path] = []
    stream = out if out is not None else sys.stdout
    for r in runs:
        f = directory / f"{r.slug}.jsonl"
        f.unlink(missing_ok=True)
        argv = [python, "-m", BENCH_MODULE, *bench_argv(r, base_url, model, tokenizer, str(f))]
        print(
            f"bench {r.type} {r.label}: {' '.join(shlex.quote(a) for a in argv[1:])}", file=stream, flush=True
        )
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not f.exists():
            tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["(no output)"])[
                -1
            ]
            raise BenchError(f"{r.type} {r.label}: {BENCH_MODULE} exited {proc.returncode}: {tail}")
        files.append(f)
    return files
