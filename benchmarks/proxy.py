"""Proxy gaming: reproduce the tables of docs/proxy.md and check against reference libraries.

Run: ``.venv/bin/python benchmarks/proxy.py`` (numpy only, single-threaded; about a minute
of CPU). Writes ``benchmarks/results/proxy.json`` and prints Markdown tables.

References checked: scipy's Jensen-Shannon distance, scikit-learn's ROC AUC and logistic
regression (the Bradley-Terry fit), a brute-force search over deterministic policies
(backward induction), and the analytic best-of-n KL.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mlsafety.alignment.proxy import TabularMDP, backward_induction, evaluate_policy
from mlsafety.alignment.proxy.detection import auroc, evaluate_detection
from mlsafety.alignment.proxy.detector import jensen_shannon
from mlsafety.alignment.proxy.mitigations import regularized_sweep
from mlsafety.alignment.proxy.overoptimization import (
    BradleyTerryRewardModel,
    GoldReward,
    best_of_n_kl,
    best_of_n_weights,
    overoptimization_experiment,
    overoptimization_sweep,
    sample_comparisons,
)
from mlsafety.alignment.proxy.sweep import sweep

RESULTS = Path(__file__).parent / "results" / "proxy.json"


def references() -> dict[str, float]:
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=1000), rng.dirichlet(np.ones(5), size=1000)
    js = float(np.abs(jensen_shannon(p, q) - jensenshannon(p, q, base=2, axis=1) ** 2).max())
    labels = rng.random(5000) < 0.3
    scores = labels + rng.normal(size=5000)
    auc = abs(auroc(labels, scores) - roc_auc_score(labels, scores))
    gold = GoldReward(n_features=6, n_relevant=2)
    a, b, preferred = sample_comparisons(gold, 2000, seed=1)
    model = BradleyTerryRewardModel(regularization=1.0).fit(a, b, preferred)
    reference = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-12, max_iter=100000)
    reference.fit(model.features(a) - model.features(b), preferred)
    bt = float(np.abs(model.coef_ - reference.coef_[0]).max())
    # backward induction vs brute force over all 2^(3*3) deterministic time-dependent policies
    gaps = []
    for seed in range(5):
        r = np.random.default_rng(seed)
        mdp = TabularMDP.from_arrays(r.dirichlet(np.ones(3), size=(3, 2)), r.normal(size=(3, 2)),
                                     r.normal(size=(3, 2)), np.eye(3)[0], 3)
        best = -np.inf
        for choice in itertools.product(range(2), repeat=9):
            policy = np.zeros((3, 3, 2))
            for index, action in enumerate(choice):
                policy[index // 3, index % 3, action] = 1.0
            best = max(best, evaluate_policy(mdp, policy, "proxy"))
        gaps.append(abs(backward_induction(mdp)[-1][0].max() - best))
    pool = np.random.default_rng(2).random(100000)
    kl_gap = max(abs(float(w @ np.log(w * pool.size)) - best_of_n_kl(n))
                 for n in (2, 4, 16) for w in [best_of_n_weights(pool, n, "pool")])
    return {"jensen_shannon_vs_scipy": js, "auroc_vs_sklearn": float(auc), "bradley_terry_vs_sklearn": bt,
            "backward_induction_vs_brute_force": float(max(gaps)), "pool_bon_kl_vs_formula": float(kl_gap)}


def main() -> None:
    started = time.process_time()
    out: dict = {"references": references()}
    detection = evaluate_detection(seeds=5, n_resamples=500)
    out["detection"] = detection.summary
    out["transitions"] = [{"environment": s.environment, "knob": s.knob, **s.transition.to_dict()}
                          for s in detection.sweeps]
    out["overoptimization"] = overoptimization_experiment(n_ensemble=5).to_dict()
    out["overoptimization_sweeps"] = {
        "n_comparisons": overoptimization_sweep("n_comparisons", [30, 100, 300, 1000, 3000], seeds=3),
        "capacity": overoptimization_sweep("capacity", [0, 5, 10, 20], seeds=3, n_comparisons=50),
        "label_noise": overoptimization_sweep("label_noise", [0.0, 0.1, 0.2, 0.3], seeds=3, n_comparisons=50),
    }
    mitigated = []
    for env in ("lagoon", "tomato_watering", "pandemic", "boat_race"):
        result = sweep(env, "horizon", seeds=3)
        row = {"environment": env, "knob": "horizon", "unregularised": float(result.true_returns[:, -1].mean())}
        for strength in (0.1, 0.3):
            row[f"kl_{strength}"] = float(regularized_sweep(result, "kl", strength)["true"][:, -1].mean())
        mitigated.append(row)
    out["mitigations"] = mitigated
    out["cpu_seconds"] = time.process_time() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=float))

    print("references (max abs difference):", json.dumps(out["references"], indent=1))
    print("\n| metric | subset | environment | n | gamed | AUROC [95% CI] | max F1 |\n|---|---|---|---|---|---|---|")
    for r in detection.summary:
        ci = "n/a" if np.isnan(r["auroc"]) else f"{r['auroc']:.3f} [{r['auroc_low']:.3f}, {r['auroc_high']:.3f}]"
        f1 = "n/a" if np.isnan(r["max_f1"]) else f"{r['max_f1']:.3f}"
        print(f"| {r['metric']} | {r['subset']} | {r['group']} | {r['n']} | {r['n_gamed']} | {ci} | {f1} |")
    print("\nflagged transitions:")
    for t in out["transitions"]:
        if t["flagged"]:
            print(f"  {t['environment']}/{t['knob']}: {t['value_before']:g} -> {t['value_after']:g}, "
                  f"drop {t['drop']:.3g}")
    over = out["overoptimization"]
    print(f"\noveroptimisation: peak n {over['bon_peak_n']}, bon fit {over['bon_fit']}, rl fit {over['rl_fit']}")
    for name, rows in out["overoptimization_sweeps"].items():
        print(name, [(r["value"], round(r["bon_beta"], 3)) for r in rows])
    print("mitigations:", mitigated)
    print(f"CPU seconds: {out['cpu_seconds']:.1f}")


if __name__ == "__main__":
    main()
