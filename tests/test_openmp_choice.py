from __future__ import annotations

from compress.cli.main import runs_work
from compress.cli.openmp import DECISION, choose_wait_policy


def _never():
    raise AssertionError("the CPUs must not be sampled")


def test_passive_only_on_busy_cpus():
    env: dict[str, str] = {}
    assert choose_wait_policy(env, busy=lambda: 0.8).startswith("passive: other processes kept 80%")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env[DECISION].startswith("passive")
    for load, why in ((0.1, "default: CPUs idle"), (None, "default: CPU load unknown")):
        env = {}
        assert choose_wait_policy(env, busy=lambda load=load: load).startswith(why)
        assert "OMP_WAIT_POLICY" not in env


def test_user_settings_and_inherited_choice_are_kept():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert choose_wait_policy(env, busy=_never) == "user: OMP_WAIT_POLICY=ACTIVE"
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    env = {"GOMP_SPINCOUNT": "10000"}
    assert choose_wait_policy(env, busy=_never) == "user: GOMP_SPINCOUNT=10000" and "OMP_WAIT_POLICY" not in env
    env = {DECISION: "default: CPUs idle at start-up"}  # a process relaunched by --devices
    assert choose_wait_policy(env, busy=_never) == "default: CPUs idle at start-up" and "OMP_WAIT_POLICY" not in env


def test_only_commands_that_compute_sample_the_cpus():
    assert runs_work(["prune", "ckpt.pt", "--calib", "imgs"])
    assert not runs_work([])
    assert not runs_work(["--version"])
    assert not runs_work(["prune", "--help"])
