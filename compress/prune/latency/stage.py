"""``prune --target-latency/--target-speedup``: table -> model -> selection -> measured check.

1. Time every varying conv/linear layer alone at its grid widths on the target runtime (cached,
   see ``compress.prune.latency.table``).
2. Probe in context (``compress.prune.latency.probe``): time the network with each class of like groups
   narrowed to each allowed width; widths that do not pay inside the network are dropped, and each
   class's layer savings are scaled by what it measured in context against what the table predicts.
3. Measure the original network and a few pruned configurations at live widths (each beside the
   original, so machine drift cancels); fit ``a·raw + b``;
   report the prediction error on other configurations it was not fitted on (held out).
4. Select by importance per millisecond (``compress.prune.latency.search``) for the goal, build the
   pruned network, measure it. If it misses the target by more than the tolerance, scale the goal
   by target/measured and select again (a few rounds); keep the closest that meets the target,
   else the closest.
5. Time the original and the chosen network interleaved: those are the figures reported.
"""

from __future__ import annotations

import copy

import numpy as np

from compress.export.layer_timing import make_timer
from compress.export.records import LatencyAttempt, LatencyFit, LatencyRecord, LatencyTableUse, PredictionError
from compress.prune.latency.config import LatencyConfig
from compress.prune.latency.model import LatencyModel
from compress.prune.latency.probe import PROBE_SECONDS, WidthProbe
from compress.prune.latency.search import candidates, search
from compress.prune.latency.table import LatencyTable
from compress.prune.latency.terms import latency_terms, model_key
from compress.prune.plan import Plan, PrunePolicy, layer_limits, importance_kept, plan_for_units
from compress.progress import progress_bar
from compress.prune.surgery import apply_cuts

FIT_FRACTIONS = (0.5, 1.0)  # uniform configurations (share of each group's allowed cut) fitted on
RANDOM_FIT, HELD_OUT = 1, 3  # random configurations fitted on / held out for the error figure
FINAL_SECONDS = 2.0
KEEP_VERIFY = 24  # measured selections kept in the table (they refine later fits)


def latency_plan(model, groups, scores, policy: PrunePolicy, latency: LatencyConfig, input_shape, say,
                 *, progress: bool = True, timer=None) -> tuple[Plan, LatencyRecord]:
    timer = timer or make_timer(latency.backend, batch=latency.batch, threads=latency.threads, device=latency.device)
    shape = tuple(input_shape)
    example = timer.example(shape)
    terms = latency_terms(groups, policy.round_to)
    table = LatencyTable.open(model_key(terms, shape), timer.describe(), latency.cache_dir)
    if table.stale_reason:
        say.warn(f"latency table {table.path} not reused: {table.stale_reason}; measuring again")
    _fill(table, terms, timer, say, progress)
    lat = LatencyModel(terms, table)
    none = np.zeros(len(groups.graph.sets), dtype=bool)

    def widths_of(removed: list[int]) -> np.ndarray:
        mask = none.copy()
        mask[removed] = True
        return groups.kept_widths(mask)

    original_run = timer.runner(model, example)
    original_ms = timer.time_runner(original_run)

    def time_pair(removed: list[int], role: str) -> tuple[float, float]:
        """Time the network without ``removed`` beside the original; record it in the table as if the original
        ran at ``original_ms`` (the machine's speed drifts by tens of percent over minutes here)."""
        full_ms, cut_ms = timer.compare(original_run, timer.runner(_cut(model, groups, removed), example),
                                        PROBE_SECONDS)
        table.add_network(widths_of(removed), cut_ms * original_ms / full_ms, role)
        return full_ms, cut_ms

    probe = WidthProbe(lat, table.probes)
    cands = candidates(groups, scores, layer_limits(groups, policy, policy.caps()[-1]), policy.round_to)
    if todo := probe.pending(cands):
        say.info(f"width probe: timing {todo} networks with one class of groups narrowed, interleaved with the "
                 f"original")
        with progress_bar("width probe", todo, enabled=progress) as bar:
            probe.run(cands, lambda removed: time_pair(removed, "probe"), lambda: bar.advance(1))
        table.probes = probe.savings
        table.save()
    lat.fit([{"widths": widths_of([]), "ms": original_ms}, *table.points("probe")])
    probe.judge(cands, widths_of)
    for line in probe.lines():
        say.info(f"width probe: {line}")
    if not table.points("fit"):
        table.add_network(widths_of([]), original_ms, "fit")
        for removed in _configs(groups, scores, policy, len(FIT_FRACTIONS) + RANDOM_FIT, seed=0, probe=probe):
            time_pair(removed, "fit")
    if not table.points("held-out"):
        for removed in _configs(groups, scores, policy, HELD_OUT, seed=1, uniform=False, probe=probe):
            time_pair(removed, "held-out")
    table.save()
    lat.fit(table.points("fit"))
    errors = lat.errors(table.points("held-out"))
    say.info(f"latency model ({latency.backend}, batch {latency.batch}, {timer.threads} threads): "
             f"{len(table.entries)} layer timings ({table.measured} measured now); prediction error on "
             f"{len(errors)} held-out configurations: mean {np.mean(errors):.1%}, max {np.max(errors):.1%}")
    lat.fit(table.points("fit", "held-out", "verify"))

    target = policy.target_latency_ms or original_ms / policy.target_speedup
    goal, attempts, best, tried = target, [], None, []
    for attempt in range(latency.attempts):
        sel, cap = _select(groups, scores, policy, lat, goal, probe)
        run = timer.runner(_cut(model, groups, sel.removed), example)
        before, ms = timer.compare(original_run, run, PROBE_SECONDS)
        if policy.target_speedup:  # judged against the original timed beside it: machine drift cancels
            target = before / policy.target_speedup
        table.add_network(widths_of(sel.removed), ms * original_ms / before, "verify")
        attempts.append({"goal_ms": round(goal, 4), "predicted_ms": round(sel.predicted_ms, 4),
                         "measured_ms": round(ms, 4), "original_ms": round(before, 4), "reached": sel.reached,
                         "max_layer_ratio": cap})
        say.info(f"latency round {attempt + 1}: goal {goal:.3f} ms, predicted {sel.predicted_ms:.3f} ms, "
                 f"measured {ms:.3f} ms (target {target:.3f} ms; original {before:.3f} ms beside it)")
        miss = abs(ms - target) / target
        rank = (ms > target * (1 + latency.tolerance), miss)  # a network that meets the target first
        if best is None or rank < best[0]:
            best = (rank, sel, cap, run)
        if miss <= latency.tolerance or (not sel.reached and ms > target) or set(sel.removed) in tried:
            break  # close enough, nothing narrower allowed, or the goal moved without changing the network
        tried.append(set(sel.removed))
        goal *= target / ms
    table.networks = [p for p in table.networks if p["role"] != "verify"] + table.points("verify")[-KEEP_VERIFY:]
    table.save()
    miss, sel, cap, run = best
    before, measured = timer.compare(original_run, run, FINAL_SECONDS)
    if policy.target_speedup:  # a relative target is judged against the original timed beside it
        target = before / policy.target_speedup
    plan = plan_for_units(groups, sel.removed)
    plan.max_layer_ratio = cap
    plan.importance_kept = kept = importance_kept(groups, scores, sel.removed)
    if not sel.reached and measured > target * (1 + latency.tolerance):  # the model's floor, if met, limited nothing
        plan.limited_by_caps = True
        plan.notes.append(f"latency target {target:.3f} ms not reachable under the layer caps (up to {cap:.0%} "
                          f"per layer): the narrowest allowed network is predicted at {sel.predicted_ms:.3f} ms "
                          f"and measured {measured:.3f} ms; per-operator overhead sets the floor here")
    elif cap != policy.caps()[0]:
        plan.notes.append(f"per-layer cap raised to {cap:.0%} to reach the latency target")
    record = LatencyRecord(
        backend=latency.backend, batch=latency.batch, threads=timer.threads, device=timer.device,
        target_ms=round(target, 4), target_speedup=policy.target_speedup,
        predicted_ms=round(sel.predicted_ms, 4), measured_ms=round(measured, 4),
        original_ms=round(before, 4), speedup=round(before / measured, 3),
        target_error=round(measured / target - 1, 4), importance_kept=round(kept, 4),
        prediction_error=PredictionError(mean=round(float(np.mean(errors)), 4), max=round(float(np.max(errors)), 4),
                                         configs=len(errors)),
        fit=LatencyFit(a=lat.a, b_ms=lat.b), attempts=tuple(LatencyAttempt(**a) for a in attempts),
        width_probe=probe.summary(),
        table=LatencyTableUse(path=str(table.path), entries=len(table.entries), measured_now=table.measured,
                              reused=table.reused),
    )
    say.info(f"latency: target {target:.3f} ms, predicted {sel.predicted_ms:.3f} ms, measured {measured:.3f} ms "
             f"vs original {before:.3f} ms ({before / measured:.2f}x); importance kept {kept:.1%}")
    return plan, record


def _fill(table: LatencyTable, terms, timer, say, progress: bool) -> None:
    missing, seen = [], set()
    for t in terms:
        for cin, cout in t.points():
            key = table.entry_key(t.spec.key(), cin, cout)
            if key not in table.entries and key not in seen:
                seen.add(key)
                missing.append((t, cin, cout))
    if not missing:
        return
    say.info(f"latency table: timing {len(missing)} layer shapes on {timer.backend} (cached in {table.path})")
    with progress_bar("latency table", len(missing), enabled=progress) as bar:
        for t, cin, cout in missing:
            table.get(t.spec, cin, cout, lambda: timer.time_layer(t.spec, cin, cout))
            bar.advance(1, status=t.layer)
    table.save()


def _cut(model, groups, removed: list[int]):
    return apply_cuts(copy.deepcopy(model), plan_for_units(groups, removed).cuts)


def _select(groups, scores, policy: PrunePolicy, lat: LatencyModel, goal: float, probe: WidthProbe):
    for cap in policy.caps():
        sel = search(groups, scores, lat, goal, layer_limits(groups, policy, cap), policy.round_to, probe)
        if sel.reached:
            break
    return sel, cap


def _configs(groups, scores, policy: PrunePolicy, n: int, *, seed: int, uniform: bool = True,
             probe: WidthProbe | None = None) -> list[list[int]]:
    """Pruned configurations to measure: uniform shares of each group's allowed cut, then random ones (at the
    widths the search may choose: dead ones left out)."""
    cap = policy.caps()[-1]
    cands = candidates(groups, scores, layer_limits(groups, policy, cap), policy.round_to)
    if probe is not None:
        probe.drop_dead(cands)
    rng = np.random.default_rng(seed)
    configs = []
    for k in range(n):
        if uniform and k < len(FIT_FRACTIONS):
            shares = [FIT_FRACTIONS[k]] * len(cands)
        else:
            shares = rng.uniform(0.0, 1.0, len(cands))
        configs.append([r for g, f in zip(cands, shares) for r in g.order[:g.stops[int(round(f * (len(g.stops) - 1)))]]])
    return configs
