"""`--baseline`: the off-the-shelf alternative as a bench row, and the verdict line, on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from compress.archs.digits import digitnet
from compress.export.report import markdown, verdict
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def pruned(tiny_assets, tmp_path_factory):
    from compress.api import prune

    out = tmp_path_factory.mktemp("sibling") / "pruned"
    prune(str(tiny_assets / "ckpt.pt"), str(tiny_assets / "calib"), arch="digits", ratio=0.5, recover=False,
          out=str(out), round_to=8, progress=False, quiet=True)
    return out


@pytest.fixture(scope="module")
def sibling(tmp_path_factory):
    """Another DigitNet (other weights), standing in for the off-the-shelf smaller model."""
    path = tmp_path_factory.mktemp("alt") / "alt.pt"
    torch.manual_seed(1)
    torch.save(digitnet().state_dict(), path)
    return path


FAST = ["--backend", "torch,onnxruntime", "--batch", "1", "--iters", "3", "--warmup", "1", "--min-seconds", "0",
        "--no-memory"]


def test_bench_adds_the_baseline_row_and_the_verdict(pruned, sibling, tiny_assets, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = run_cli(["bench", pruned, "--baseline", sibling, "--arch", "digits", *FAST,
                                 "--eval", tiny_assets / "eval", "-o", out, "--json"], capsys)
    assert code == 0, err
    assert "--arch digits ignored" not in err  # with OUT, --arch is the baseline's
    report = json.loads(stdout)
    models = {m["name"]: m for m in report["models"]}
    assert set(models) == {"original", "compressed", "alternative"}
    assert models["alternative"]["top1"] is not None and models["alternative"]["macs"] == models["original"]["macs"]
    assert {r["model"] for r in report["rows"]} == {"original", "compressed", "alternative"}
    v = report["verdict"]
    assert (v["model"], v["against"]) == ("compressed", "alternative")
    assert v["mac_ratio"] < 1 and set(v["latency_ratios"]) == {"torch batch 1", "onnxruntime batch 1"}
    assert v["metric_diff"] == pytest.approx((models["compressed"]["top1"] - models["alternative"]["top1"]) * 100)
    assert v["line"].startswith("compressed beats alternative" if v["beats"] else "compressed does not beat")
    md = (out / "report.md").read_text()
    assert v["line"] in md and "| alternative |" in md
    assert (out / "report.png").stat().st_size > 0


def test_bench_two_models_with_a_baseline_and_its_own_arch(tiny_assets, sibling, tmp_path, capsys):
    code, stdout, err = run_cli(["bench", tiny_assets / "ckpt.pt", sibling, "--arch", "digits", "--baseline", sibling,
                                 "--baseline-arch", "digits", *FAST, "-o", tmp_path / "r", "--json"], capsys)
    assert code == 0, err
    v = json.loads(stdout)["verdict"]
    assert (v["model"], v["against"], v["beats"], v["metric_diff"]) == ("B", "alternative", None, None)
    assert "no top-1 to judge (give --eval)" in v["line"]


@pytest.mark.parametrize("args, code, words", [
    (["--baseline", "{bad}", "--arch", "digits"], 3, "bad.pt"),
    (["--baseline", "{alt}", "--arch", "no_such_arch"], 3, "no_such_arch"),
    (["--baseline", "{alt}", "--arch", "digits", "--arch-kwargs", "num_classes=5"], 3, "num_classes"),
    (["--baseline", "{five}", "--arch", "digits", "--arch-kwargs", "num_classes=5"], 2, "outputs (2, 5)"),
    (["--baseline", "{alt}", "--arch", "digits", "--input-size", "28"], 2, "inputs"),
    (["--baseline-arch", "digits"], 2, "need --baseline"),
])
def test_bad_baseline_is_one_line_before_any_timing(pruned, sibling, tmp_path, capsys, args, code, words):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    five = tmp_path / "five.pt"
    torch.save(digitnet(num_classes=5).state_dict(), five)
    args = [a.format(bad=bad, alt=sibling, five=five) for a in args]
    out = tmp_path / "r"
    got, _, err = run_cli(["bench", pruned, *args, *FAST, "-o", out], capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert got == code and len(lines) == 1 and words in lines[0], err
    assert not (out / "report.json").exists()


def test_prune_bench_baseline(tiny_assets, sibling, tmp_path, capsys):
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--baseline", sibling, "--no-recover", "-o", tmp_path / "a"], capsys)
    assert code == 2 and "--bench" in err and not (tmp_path / "a").exists()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--bench", "--baseline", tmp_path / "missing.pt", "-o", tmp_path / "b"], capsys)
    assert code == 2 and not (tmp_path / "b").exists()
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--eval", tiny_assets / "eval", "--ratio", "0.5", "--no-recover", "--bench",
                                 "--baseline", sibling, "-o", tmp_path / "c", "--no-progress", "--json"], capsys)
    assert code == 0, err
    printed = json.loads(stdout)  # stdout holds the JSON alone: the bench tables go to stderr
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert {m["name"] for m in report["models"]} == {"original", "compressed", "alternative"}
    assert report["verdict"]["metric_diff"] is not None
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["bench"]["verdict"]["line"] == report["verdict"]["line"] == printed["bench"]["verdict"]["line"]
    assert "Compared with" in err
    # the same run for a person: the summary table, then the verdict on stdout (it read the bench record by key)
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--eval", tiny_assets / "eval", "--ratio", "0.5", "--no-recover", "--bench",
                                 "--baseline", sibling, "-o", tmp_path / "d", "--no-progress"], capsys)
    assert code == 0, err
    verdict_line = json.loads((tmp_path / "d" / "report.json").read_text())["verdict"]["line"]
    assert verdict_line in stdout.splitlines()


def _report(top1, macs, p50):
    """A report with two models' fp32 rows on torch and onnxruntime at batch 1."""
    models = [{"name": n, "top1": t, "macs": m} for n, t, m in zip(("compressed", "alternative"), top1, macs)]
    rows = [{"model": n, "backend": b, "batch": 1, "precision": "fp32", "throughput": 1 / p50[n][b],
             "latency_ms": {"p50": p50[n][b], "p90": p50[n][b]}} for n in p50 for b in p50[n]]
    return {"models": models, "rows": rows, "task": {"metric": "top-1", "agreement": "agreement"},
            "settings": {"baseline": "compressed", "iters": 1, "warmup": 1},
            "environment": {"cpu": "x", "cpu_count": 1, "threads": 1, "torch": "t", "onnxruntime": "o"},
            "comparisons": [], "skipped": [], "notes": []}


def test_verdict_rule():
    fast = {"compressed": {"torch": 1.0, "onnxruntime": 0.5}, "alternative": {"torch": 2.0, "onnxruntime": 1.0}}
    v = verdict(_report((0.83, 0.82), (20e6, 40e6), fast), "compressed", "alternative")
    assert v["beats"] and v["metric_diff"] == pytest.approx(1.0) and v["mac_ratio"] == 0.5
    assert v["latency_ratio"] == pytest.approx(0.5)
    assert v["line"] == "compressed beats alternative: +1.00 top-1 at 0.50x its MACs, 0.50x its latency " \
                        "(0.50x-0.50x over 2 backend/batch rows)"
    assert not verdict(_report((0.81, 0.82), (20e6, 40e6), fast), "compressed", "alternative")["beats"]  # less accurate
    assert not verdict(_report((0.83, 0.82), (41e6, 40e6), fast), "compressed", "alternative")["beats"]  # more MACs
    slow = {"compressed": {"torch": 3.0, "onnxruntime": 0.9}, "alternative": {"torch": 2.0, "onnxruntime": 1.0}}
    v = verdict(_report((0.83, 0.82), (20e6, 40e6), slow), "compressed", "alternative")
    assert v["latency_ratio"] == pytest.approx((1.5 * 0.9) ** 0.5) and not v["beats"]
    assert "does not beat" in v["line"]
    report = _report((0.83, 0.82), (20e6, 40e6), fast)
    report["verdict"] = verdict(report, "compressed", "alternative")
    assert report["verdict"]["line"] in markdown(report)


def test_sweep_plots_the_baseline_as_a_point(tiny_assets, sibling, tmp_path, capsys):
    common = ["sweep", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib", "--ratios", "0.5",
              "--no-recover", "--round-to", "1", "--eval", tiny_assets / "eval"]
    code, _, err = run_cli([*common, "--baseline", sibling, "--baseline-arch", "nope", "-o", tmp_path / "bad"], capsys)
    assert code == 3 and not (tmp_path / "bad" / "ratio-0.5").exists()  # before any pruning
    code, stdout, err = run_cli([*common, "--baseline", sibling, "-o", tmp_path / "sw", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    b = result["baseline"]
    assert b["name"] == "alternative" and b["latency_ms"] > 0 and b["top1"] is not None
    assert b["macs"] == result["rows"][0]["macs"]  # a DigitNet, like the original
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 0
