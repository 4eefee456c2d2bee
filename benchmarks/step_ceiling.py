"""How much faster can one distillation step get on a CPU? The ceiling of teacher-side speed-ups, and torch.compile.

The step of the default recipe, stripped to its arithmetic: a ResNet-56-sized teacher (``cifar_resnet56``,
random weights; BatchNorms folded as recovery folds them), a student with half of every block's inner
channels, batch 64 of 32x32 images, channels-last, KL at T=4, SGD with Nesterov momentum. Modes, each in a
fresh process, one after the other:

- ``fresh``: the teacher runs on every batch (what recovery does);
- ``no-teacher``: the teacher's output is computed once and reused, so a step is the student's forward and
  backward and the optimizer alone. Its speed is the ceiling of ANY teacher-side speed-up (caching views,
  a faster teacher runtime, a cheaper teacher precision): none can make the step faster than this;
- ``compile``: ``torch.compile`` (inductor, C++ on the CPU) of the student's forward and loss, teacher fresh;
  the first steps include the compilation, so only the timed steps after warm-up count;
- ``compile-both``: as ``compile``, and the teacher compiled too with inductor's ``freezing`` (its weights
  constants of the graph, convolutions pre-packed for the CPU), teacher fresh every step.

    .venv/bin/python benchmarks/step_ceiling.py [--modes fresh,no-teacher,compile] [--steps 30] [--threads N]

Run it on a quiet machine: the modes run one after the other, so load from other jobs skews the ratios.
Results: benchmarks/RESULTS.md, section "Distillation step speed".
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("fresh", "no-teacher", "compile", "compile-both")


def one_mode(mode: str, steps: int, threads: int | None) -> None:
    import torch
    import torch.nn.functional as F

    from compress.archs import cifar_resnet
    from compress.recover.teacher import folded_teacher
    from tune_distill import prune_half_inner

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    teacher = cifar_resnet.resnet56().eval()
    student = prune_half_inner(teacher).train()
    x = torch.randn(64, 3, 32, 32)
    cl = torch.channels_last
    teacher, student = teacher.to(memory_format=cl), student.to(memory_format=cl)
    runner = folded_teacher(teacher, x[:2].to(memory_format=cl))[0]
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def teach(xb):
        with torch.no_grad():
            return runner(xb)

    def loss_fn(xb, t):
        s = student(xb)
        return F.kl_div(F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction="batchmean", log_target=True) * 16

    if mode in ("compile", "compile-both"):
        loss_fn = torch.compile(loss_fn)
    if mode == "compile-both":  # the teacher too, its weights frozen into the graph (inference only)
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        runner = torch.compile(runner)
    fixed = teach(x.to(memory_format=cl))

    def step():
        xb = x.to(memory_format=cl)
        t = fixed if mode == "no-teacher" else teach(xb)
        loss = loss_fn(xb, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    print(f"{mode} {1 / per_step:.4f} {warm:.1f} {torch.get_num_threads()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: run this mode only
    args = ap.parse_args()
    if args.one:
        one_mode(args.one, args.steps, args.threads)
        return
    rows = []
    for mode in args.modes.split(","):
        if mode not in MODES:
            sys.exit(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
        cmd = [sys.executable, __file__, "--one", mode, "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        rows.append((mode, float(out[1]), float(out[2]), int(out[3])))
        print(f"{mode}: {rows[-1][1]:.3f} steps/s ({rows[-1][2]:.1f} s for the 3 warm-up steps)", flush=True)
    base = next((r[1] for r in rows if r[0] == "fresh"), None)
    print(f"\n{'mode':<12}{'threads':>8}{'steps/s':>10}{'x fresh':>9}{'warm-up s':>11}")
    for mode, rate, warm, threads in rows:
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"{mode:<12}{threads:>8}{rate:>10.3f}{ratio:>9}{warm:>11.1f}")


if __name__ == "__main__":
    main()
