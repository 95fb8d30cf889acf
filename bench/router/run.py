"""Router benchmark (issue 6): accuracy vs strong-model call share on held-out MMLU domains.

    .venv/bin/python bench/router/run.py            # full run -> bench/results/router.json
    .venv/bin/python bench/router/run.py --smoke    # CI size  -> bench/results/router_smoke.json

Data: ../shared/data/routing/mmlu (RouteLLM's MMLU outcomes of Mixtral-8x7B, the cheap
model, and GPT-4-1106, the strong one), contaminated prompts excluded. The 57 domains are
split into ``--folds`` groups; each group is held out once while the router is trained on
the other domains (``llmproxy.optimizer.router``: MiniLM embedding -> one logistic
regression per model). Every number below comes from predictions on held-out domains only.

Two readings at 95% of the strong model's accuracy:
* ``oracle cut`` (RouteLLM's measure): the threshold is swept on the held-out predictions
  and the cheapest cut that reaches the target is read off the curve;
* ``calibrated``: the threshold is chosen on the training domains (out-of-fold inside
  them) and applied blind to the held-out domain group — what a deployed router gets.

Money: each prompt priced with the catalog (cheap -> gpt-4o-mini, strong -> gpt-4o), its
cl100k token count as input and ``--output-tokens`` of output.
Embeddings are cached under ``$XDG_CACHE_HOME/llmproxy`` (~/.cache/llmproxy) by content hash
(the first full run embeds 14k prompts: many minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

from llmproxy.gateway.catalog import load_catalog  # noqa: E402
from llmproxy.optimizer.router.dataset import (  # noqa: E402
    CHEAP_MODEL,
    DEFAULT_DATA_DIR,
    STRONG_MODEL,
    domain_folds,
    load_mmlu,
)
from llmproxy.optimizer.router.embedding_cache import embed_cached  # noqa: E402
from llmproxy.optimizer.router.training import (  # noqa: E402
    calibrate_threshold,
    fit_router,
    out_of_domain_confidence,
    point_at_quality,
    random_accuracy,
    routing_curve,
)
from llmproxy.platform.embeddings import MODEL_ID, Embedder  # noqa: E402
from llmproxy.platform.tokens import count_tokens  # noqa: E402

CHEAP_STANDIN, STRONG_STANDIN = "gpt-4o-mini", "gpt-4o"
QUALITY_FRACTION = 0.95
SHARES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "note": "2 cores, 24 GiB, shared with other work (timings are on a loaded machine)",
    }


def held_out_predictions(
    vectors: np.ndarray,
    domains: np.ndarray,
    cheap_ok: np.ndarray,
    strong_ok: np.ndarray,
    folds: list[list[str]],
    *,
    regularization: list[float],
    inner_folds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Out-of-domain predictions of P(cheap correct), P(strong correct), per-fold reports.

    Inside each fold, the training domains alone choose the regularisation (the C whose
    out-of-domain predictions there need the fewest strong calls for 95%) and the threshold.
    """
    predicted = np.zeros((len(vectors), 2))
    thresholds = np.zeros(len(vectors))
    reports = []
    for number, held_out in enumerate(folds):
        test = np.isin(domains, held_out)
        train = ~test
        inner = domain_folds(sorted(set(domains[train])), inner_folds, seed + number + 1)
        best: tuple[float, float, Any] | None = None
        for c in regularization:
            # out-of-fold inside the training domains, by domain
            inner_conf = out_of_domain_confidence(
                vectors[train],
                domains[train],
                cheap_ok[train],
                folds=inner,
                regularization=c,
                seed=seed,
            )
            point = calibrate_threshold(
                inner_conf, cheap_ok[train], strong_ok[train], quality_fraction=QUALITY_FRACTION
            )
            if best is None or point.strong_share < best[0]:
                best = (point.strong_share, c, point)
        assert best is not None
        _, chosen_c, calibrated = best
        labels = {CHEAP_STANDIN: cheap_ok[train], STRONG_STANDIN: strong_ok[train]}
        router = fit_router(
            vectors[train],
            labels,
            version=f"bench-fold{number}",
            embedding_model=MODEL_ID,
            regularization=chosen_c,
            seed=seed,
        )
        predicted[test] = router.predict_many(vectors[test])
        thresholds[test] = calibrated.threshold
        escalated = predicted[test, 0] < calibrated.threshold
        accuracy = np.where(escalated, strong_ok[test], cheap_ok[test]).mean()
        reports.append(
            {
                "fold": number,
                "held_out_domains": held_out,
                "train_prompts": int(train.sum()),
                "test_prompts": int(test.sum()),
                "regularization_C_chosen_on_training_domains": chosen_c,
                "threshold_from_training_domains": round(calibrated.threshold, 4),
                "test_strong_share": round(float(escalated.mean()), 4),
                "test_accuracy": round(float(accuracy), 4),
                "test_strong_accuracy": round(float(strong_ok[test].mean()), 4),
            }
        )
    return predicted, thresholds, reports


def latency(vectors: np.ndarray, prompts: list[str], embedder: Embedder, router: Any) -> dict:
    single = vectors[:1]
    times = []
    for i in range(2000):
        started = time.perf_counter()
        router.predict(vectors[i % len(vectors)])
        times.append(time.perf_counter() - started)
    with_embedding = []
    for prompt in prompts:
        started = time.perf_counter()
        router.predict(embedder.embed([prompt])[0])
        with_embedding.append(time.perf_counter() - started)
    del single

    def summary(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1000
        return {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "samples": len(values),
        }

    return {
        "classifier_only": summary(times),
        "embedding_plus_classifier": summary(with_embedding),
        "embedding_prompts": "held-out MMLU prompts, one at a time (as the gateway does)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CI size: 12 prompts per domain")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=4)
    parser.add_argument(
        "--regularization",
        default="0.3,1,3,10",
        help="logistic C candidates (comma-separated), chosen per fold on training domains",
    )
    parser.add_argument("--output-tokens", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"routing data not found at {args.data}", file=sys.stderr)
        return 2
    out = args.out or RESULTS / ("router_smoke.json" if args.smoke else "router.json")
    started = time.perf_counter()
    data = load_mmlu(args.data, per_domain_limit=12 if args.smoke else 0)
    embedder = Embedder()
    vectors = embed_cached(data.prompts, embedder)
    domains = np.array(data.domains)
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    folds = domain_folds(data.domains, args.folds, args.seed)
    predicted, thresholds, reports = held_out_predictions(
        vectors,
        domains,
        cheap_ok,
        strong_ok,
        folds,
        regularization=[float(c) for c in args.regularization.split(",")],
        inner_folds=args.inner_folds,
        seed=args.seed,
    )
    catalog = load_catalog(None, environ={})
    cheap_price = catalog.models[CHEAP_STANDIN].price
    strong_price = catalog.models[STRONG_STANDIN].price
    tokens = [count_tokens(p) for p in data.prompts]
    cheap_cost = np.array([cheap_price.cost_nanousd(t, args.output_tokens) for t in tokens], float)
    strong_cost = np.array(
        [strong_price.cost_nanousd(t, args.output_tokens) for t in tokens], float
    )

    acc_cheap, acc_strong = float(cheap_ok.mean()), float(strong_ok.mean())
    target = QUALITY_FRACTION * acc_strong
    all_strong_cost = float(strong_cost.sum())
    scores = {
        # what the gateway's cascade uses: escalate when P(cheap correct) is low
        "cheap_confidence": predicted[:, 0],
        # alternative ranking: expected gain of the strong model
        "expected_gain": -(predicted[:, 1] - predicted[:, 0]),
    }
    rankings: dict[str, Any] = {}
    for name, score in scores.items():
        curve = routing_curve(
            score, cheap_ok, strong_ok, cheap_cost=cheap_cost, strong_cost=strong_cost
        )
        point = point_at_quality(curve, target)
        shares = np.arange(curve.n + 1) / curve.n
        random_curve = random_accuracy(shares, acc_cheap, acc_strong)  # type: ignore[arg-type]
        gap = acc_strong - acc_cheap
        rankings[name] = {
            "curve": [
                {
                    "strong_share": s,
                    "router_accuracy": round(float(curve.accuracy[round(s * curve.n)]), 4),
                    "random_accuracy": round(random_accuracy(s, acc_cheap, acc_strong), 4),
                }
                for s in SHARES
            ],
            "apgr": round(float(np.mean((curve.accuracy - acc_cheap) / gap)), 4),
            "random_apgr": round(float(np.mean((random_curve - acc_cheap) / gap)), 4),
            "at_95pct_oracle_cut": {
                "reached": point.reached,
                "strong_share": round(point.strong_share, 4),
                "accuracy": round(point.accuracy, 4),
                "calls_saved_vs_all_strong": round(1 - point.strong_share, 4),
                "cost_saved_vs_all_strong": round(1 - point.cost / all_strong_cost, 4),
            },
        }
    random_share = min(1.0, max(0.0, (target - acc_cheap) / (acc_strong - acc_cheap)))
    random_cost = random_share * strong_cost.sum() + (1 - random_share) * cheap_cost.sum()
    escalated = predicted[:, 0] < thresholds
    calibrated_cost = float(np.where(escalated, strong_cost, cheap_cost).sum())
    router_for_latency = fit_router(
        vectors[: min(len(vectors), 4000)],
        {CHEAP_STANDIN: cheap_ok[:4000], STRONG_STANDIN: strong_ok[:4000]},
        version="latency",
        embedding_model=MODEL_ID,
    )
    sample = [data.prompts[i] for i in range(0, len(data.prompts), max(1, len(data) // 200))]
    result = {
        "benchmark": "router",
        "command": "python bench/router/run.py" + (" --smoke" if args.smoke else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "data": {
            "source": str(args.data),
            "prompts": len(data),
            "domains": len(set(data.domains)),
            "excluded_contaminated": data.excluded_contaminated,
            "cheap_model": CHEAP_MODEL,
            "strong_model": STRONG_MODEL,
        },
        "split": {
            "kind": "held-out by domain, every domain held out exactly once",
            "folds": reports,
            "seed": args.seed,
            "note": "all accuracy/share numbers are from predictions on held-out domains only",
        },
        "router": {
            "features": f"{MODEL_ID} prompt embedding (384-d)",
            "classifier": "logistic regression per model (scikit-learn)",
            "regularization_C_candidates": args.regularization,
        },
        "prices": {
            "cheap_standin": CHEAP_STANDIN,
            "strong_standin": STRONG_STANDIN,
            "output_tokens_per_answer": args.output_tokens,
            "source": "services/gateway/catalog.json",
        },
        "accuracy": {
            "cheap": round(acc_cheap, 4),
            "strong": round(acc_strong, 4),
            "target_95pct_of_strong": round(target, 4),
        },
        "random_at_95pct": {
            "strong_share": round(random_share, 4),
            "calls_saved_vs_all_strong": round(1 - random_share, 4),
            "cost_saved_vs_all_strong": round(1 - float(random_cost) / all_strong_cost, 4),
        },
        "rankings": rankings,
        "calibrated_at_95pct": {
            "how": "threshold chosen on training domains (inner out-of-fold), applied blind",
            "strong_share": round(float(escalated.mean()), 4),
            "accuracy": round(float(np.where(escalated, strong_ok, cheap_ok).mean()), 4),
            "fraction_of_strong_accuracy": round(
                float(np.where(escalated, strong_ok, cheap_ok).mean()) / acc_strong, 4
            ),
            "calls_saved_vs_all_strong": round(1 - float(escalated.mean()), 4),
            "cost_saved_vs_all_strong": round(1 - calibrated_cost / all_strong_cost, 4),
        },
        "decision_latency": latency(vectors, sample, embedder, router_for_latency),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwrote {out}")
    return 0


def print_table(result: dict[str, Any]) -> None:
    acc = result["accuracy"]
    print(
        f"MMLU, held-out domains: cheap {acc['cheap']:.3f}, strong {acc['strong']:.3f}, "
        f"target {acc['target_95pct_of_strong']:.3f} ({result['data']['prompts']} prompts)"
    )
    main_ranking = result["rankings"]["cheap_confidence"]
    print(f"\n{'strong share':>12} {'router acc':>11} {'random acc':>11}")
    for row in main_ranking["curve"]:
        print(
            f"{row['strong_share']:>12.1f} {row['router_accuracy']:>11.4f} "
            f"{row['random_accuracy']:>11.4f}"
        )
    print(f"\n{'at 95% of strong':<34} {'strong share':>12} {'calls saved':>11} {'$ saved':>8}")
    for name, ranking in result["rankings"].items():
        point = ranking["at_95pct_oracle_cut"]
        print(
            f"{'router (' + name + ', oracle cut)':<34} {point['strong_share']:>12.3f} "
            f"{point['calls_saved_vs_all_strong']:>11.3f} {point['cost_saved_vs_all_strong']:>8.3f}"
        )
    cal = result["calibrated_at_95pct"]
    print(
        f"{'router (calibrated on train)':<34} {cal['strong_share']:>12.3f} "
        f"{cal['calls_saved_vs_all_strong']:>11.3f} {cal['cost_saved_vs_all_strong']:>8.3f}"
        f"   (accuracy {cal['fraction_of_strong_accuracy']:.3f} of strong)"
    )
    rnd = result["random_at_95pct"]
    print(
        f"{'random':<34} {rnd['strong_share']:>12.3f} "
        f"{rnd['calls_saved_vs_all_strong']:>11.3f} {rnd['cost_saved_vs_all_strong']:>8.3f}"
    )
    lat = result["decision_latency"]
    print(
        f"\ndecision latency: classifier p99 {lat['classifier_only']['p99_ms']:.3f} ms; "
        f"embedding + classifier p50 {lat['embedding_plus_classifier']['p50_ms']:.2f} ms, "
        f"p99 {lat['embedding_plus_classifier']['p99_ms']:.2f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
