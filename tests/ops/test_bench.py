"""``python -m infra bench``: the seed's matrix with full flag names, the results table and the
PNG plots from recorded benchmark JSON (``tests/fixtures/bench``: the real 0.5.23 line shape,
figures not measured: see its README), and the runner against a stand-in for the benchmark
module (the real one needs an SGLang install with its model tooling and a GPU server)."""

from __future__ import annotations

import io
import json
import stat
import struct
import sys
import zlib
from pathlib import Path

import pytest

from infra.cli import main
from infra.ops.bench import (
    BENCH_MODULE,
    PLOT_SERIES,
    BenchError,
    bench_argv,
    load_results,
    matrix,
    plot_concurrency,
    render_results,
    run_matrix,
)
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "bench"


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """Every chunk of a PNG file (signature checked), parsed with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    out, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind, body = data[i + 4 : i + 8], data[i + 8 : i + 8 + length]
        (crc,) = struct.unpack(">I", data[i + 8 + length : i + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        out.append((kind, body))
        i += 12 + length
    return out


def test_matrix_uses_full_flags_fixed_lengths_and_no_download() -> None:
    runs = matrix(["throughput", "prefill", "decode", "latency", "concurrency"])
    assert len(runs) == 1 + 7 + 4 + 1 + 5
    for r in runs:
        argv = bench_argv(
            r, "http://router:8000", "Qwen/Qwen3-0.6B", "/fsx/models/Qwen/Qwen3-0.6B", "out.jsonl"
        )
        flags = [a for a in argv if a.startswith("-")]
        assert all(f.startswith("--") for f in flags)
        assert "--random-input" not in argv and "--random-output" not in argv  # the seed's abbreviations
        assert argv[argv.index("--random-range-ratio") + 1] == "1"
        assert argv[argv.index("--dataset-name") + 1] == "random-ids"  # no ShareGPT download
    prefill = [r for r in runs if r.type == "prefill"]
    assert [r.args[r.args.index("--random-input-len") + 1] for r in prefill] == [
        "128", "512", "1024", "2048", "4096", "8192", "16384",
    ]  # fmt: skip
    assert all(r.args[r.args.index("--random-output-len") + 1] == "1" for r in prefill)
    conc = [r.concurrency for r in runs if r.type == "concurrency"]
    assert conc == [1, 4, 16, 64, 256]


def test_sharegpt_needs_a_local_file() -> None:
    with pytest.raises(BenchError, match="needs the ShareGPT file locally"):
        matrix(["sharegpt"])
    runs = matrix(
        ["throughput", "sharegpt"], sharegpt="/fsx/datasets/ShareGPT_V3_unfiltered_cleaned_split.json"
    )
    for r in runs:
        assert r.args[r.args.index("--dataset-path") + 1].startswith("/fsx/datasets/")
    assert runs[0].args[runs[0].args.index("--dataset-name") + 1] == "random"
    with pytest.raises(BenchError, match="unknown benchmark type 'througput'"):
        matrix(["througput"])


def test_table_from_recorded_results() -> None:
    results = load_results(FIXTURES)
    assert [r.label for r in results] == ["in=512 out=256 rate=inf", "c=1", "c=4", "c=16", "c=64", "c=256"]
    out = io.StringIO()
    render_results(results, out)
    text = out.getvalue()
    for title in (
        "TTFT med ms",
        "TTFT p99 ms",
        "ITL med ms",
        "ITL p99 ms",
        "E2E med ms",
        "E2E p99 ms",
        "out tok/s",
        "req/s",
    ):
        assert title in text
    row = next(ln for ln in text.splitlines() if " c=16 " in ln)
    assert row.split()[2:] == ["64", "16.00", "30.00", "7.20", "10.50", "1900", "2300", "2100", "8.20"]
    thr = next(ln for ln in text.splitlines() if "rate=inf" in ln)
    assert "2813" in thr  # the last line of the file, not the earlier run's


def test_plots_are_pngs_with_the_expected_series(tmp_path: Path) -> None:
    written = plot_concurrency(load_results(FIXTURES), tmp_path / "results")
    assert sorted(p.name for p in written) == ["concurrency-latency.png", "concurrency-throughput.png"]
    for path, labels in written.items():
        chunks = png_chunks(path)
        assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
        width, height = struct.unpack(">II", chunks[0][1][:8])
        assert (width, height) == (700, 450)
        text = dict(body.split(b"\x00", 1) for kind, body in chunks if kind == b"tEXt")
        series = json.loads(text[b"Series"])
        kind = path.stem.split("-", 1)[1]
        assert series == labels == [label for _, label in PLOT_SERIES[kind]]
        assert any(kind == b"IDAT" and len(body) > 1000 for kind, body in chunks)  # something is drawn


def test_no_plot_without_a_concurrency_sweep(tmp_path: Path) -> None:
    only = tmp_path / "only"
    only.mkdir()
    (only / "throughput-x.jsonl").write_text(
        (FIXTURES / "throughput-in-512-out-256-rate-inf.jsonl").read_text()
    )
    assert plot_concurrency(load_results(only), tmp_path / "results") == {}
    with pytest.raises(BenchError, match="no benchmark results"):
        load_results(tmp_path / "results")


def test_cli_results_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--results", str(FIXTURES), "--out", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "c=256" in out and "concurrency-throughput.png (output tok/s, requests/s)" in out
    assert (tmp_path / "results" / "concurrency-latency.png").is_file()


def test_missing_module_says_how_to_run_on_the_head_node(capsys: pytest.CaptureFixture[str]) -> None:
    """The test interpreter has no sglang: the command prints the SSM way and exits 1."""
    code = main(["bench", "--url", "http://10.0.0.5:8000", "--type", "concurrency", "--model", "Qwen/Qwen3-0.6B",
                 "--python", sys.executable, "--region", "us-east-1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert f"{BENCH_MODULE} is not importable here" in out
    assert (
        "aws ssm send-command --instance-ids INSTANCE_ID --document-name AWS-RunShellScript --region us-east-1"
        in out
    )
    assert f"python3 -m {BENCH_MODULE} --backend sglang --base-url http://10.0.0.5:8000" in out
    assert "--tokenizer /fsx/models/Qwen/Qwen3-0.6B" in out and "--max-concurrency 256" in out
    assert "python -m infra bench --results DIR" in out


def _fake_module_python(tmp_path: Path) -> Path:
    """A stand-in interpreter: answers the find_spec probe, and for ``-m sglang.benchmark.serving``
    appends one result line (the 0.5.23 shape, from the fixture) to ``--output-file`` and logs
    its argv and whether OPENAI_API_KEY was in its environment."""
    line = (FIXTURES / "concurrency-c-16.jsonl").read_text().strip()
    exe = tmp_path / "python"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "if sys.argv[1] == '-c':\n    sys.exit(0)\n"
        "argv = sys.argv[3:]\n"
        f"doc = json.loads({line!r})\n"
        "if '--max-concurrency' in argv:\n    doc['max_concurrency'] = int(argv[argv.index('--max-concurrency') + 1])\n"
        "else:\n    doc['max_concurrency'] = None\n"
        "open(argv[argv.index('--output-file') + 1], 'a').write(json.dumps(doc) + '\\n')\n"
        f"open({str(tmp_path / 'calls.jsonl')!r}, 'a').write(json.dumps("
        "{'argv': sys.argv[1:], 'key': os.environ.get('OPENAI_API_KEY')}) + '\\n')\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_runner_passes_the_key_in_the_environment_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = _fake_module_python(tmp_path)
    runs = matrix(["concurrency"])
    files = run_matrix(
        runs, "http://127.0.0.1:8000", "m", "/tok", tmp_path / "res", str(python), api_key="sk-bench-123"
    )
    assert [f.name for f in files] == [f"{r.slug}.jsonl" for r in runs]
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert all(c["argv"][:2] == ["-m", BENCH_MODULE] and c["key"] == "sk-bench-123" for c in calls)
    assert all("sk-bench-123" not in " ".join(c["argv"]) for c in calls)
    assert "sk-bench-123" not in capsys.readouterr().out
    assert [r.concurrency for r in load_results(tmp_path / "res")] == [1, 4, 16, 64, 256]


def test_cli_runs_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    python = _fake_module_python(tmp_path)
    out_dir = tmp_path / "results"
    code = main(["bench", "--url", "http://127.0.0.1:8000/v1", "--type", "concurrency", "--model", "m",
                 "--python", str(python), "--out", str(out_dir)])  # fmt: skip
    assert code == 0
    assert (out_dir / "concurrency-c-256.jsonl").is_file() and (
        out_dir / "concurrency-throughput.png"
    ).is_file()
    assert "--base-url http://127.0.0.1:8000 " in capsys.readouterr().out  # /v1 stripped


def test_hint_with_a_router_key_measures_server_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key is never in the SSM command; the runs then target rank 0 directly."""
    monkeypatch.setenv("SGLANG_API_KEY", "sk-router-key-42")
    code = main(["bench", "--url", "http://10.0.0.5:8000", "--type", "latency", "--model", "m", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "sk-router-key-42" not in out
    assert "--base-url http://127.0.0.1:30000" in out and "without the router" in out
