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
from llmproxy.gateway.selection import Preferences, select_model  # noqa: E402
from llmproxy.optimizer.router.dataset import (  # noqa: E402
    CHEAP_MODEL,
    DEFAULT_DATA_DIR,
    STRONG_MODEL,
    domain_folds,
    load_mmlu,
)
from llmproxy.optimizer.router.embedding_cache import embed_cached  # noqa: E402
from llmproxy.optimizer.router.features import TEXT_FEATURES, WORD_BUCKETS  # noqa: E402
from llmproxy.optimizer.router.jobs import train_router  # noqa: E402
from llmproxy.optimizer.router.live import advise_with  # noqa: E402
from llmproxy.optimizer.router.model import (  # noqa: E402
    ROUTING_MAX_TOKENS,
    Router,
    escalation_key,
)
from llmproxy.optimizer.router.training import (  # noqa: E402
    DEFAULT_SETTINGS,
    fit_policy,
    fit_router,
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


class _Vectors:
    """The cached dataset vectors as the gateway's embedder port (no re-embedding)."""

    def __init__(self, prompts: list[str], vectors: np.ndarray) -> None:
        self._by_text = {p[:4000]: vectors[i] for i, p in enumerate(prompts)}

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._by_text[t] for t in texts])


def held_out_predictions(
    vectors: np.ndarray,
    prompts: list[str],
    domains: np.ndarray,
    cheap_ok: np.ndarray,
    strong_ok: np.ndarray,
    folds: list[list[str]],
    *,
    inner_folds: int,
    seed: int,
) -> tuple[np.ndarray, list[Router], list[dict[str, Any]]]:
    """Per fold, :func:`fit_policy` (what ``llmproxy router train`` stores) on the training
    domains alone — it picks the setting, the rule and the threshold there — then the
    held-out domains' P(cheap), P(strong) from that router."""
    predicted = np.zeros((len(vectors), 2))
    routers = []
    reports = []
    for number, held_out in enumerate(folds):
        test = np.flatnonzero(np.isin(domains, held_out))
        train = np.flatnonzero(~np.isin(domains, held_out))
        fitted = fit_policy(
            vectors[train],
            [prompts[i] for i in train],
            list(domains[train]),
            cheap_ok[train],
            strong_ok[train],
            cheap_model=CHEAP_STANDIN,
            strong_model=STRONG_STANDIN,
            version=f"bench-fold{number}",
            embedding_model=MODEL_ID,
            embedding_max_tokens=ROUTING_MAX_TOKENS,
            quality_fraction=QUALITY_FRACTION,
            inner_folds=inner_folds,
            seed=seed + number + 1,
        )
        router = fitted.router
        routers.append(router)
        predicted[test] = router.predict_many(vectors[test], [prompts[i] for i in test])
        reports.append(
            {
                "fold": number,
                "held_out_domains": held_out,
                "train_prompts": len(train),
                "test_prompts": len(test),
                "chosen_on_training_domains": {
                    "setting": fitted.setting.describe(),
                    "rule": router.rule,
                    "threshold": round(router.threshold, 4),
                    "training_domains_strong_share": round(fitted.calibration.strong_share, 4),
                },
                "tried_on_training_domains": {
                    f"{setting.describe()} / {rule}": round(share, 4)
                    for (setting, rule), share in fitted.tried.items()
                },
            }
        )
    return predicted, routers, reports


def gateway_decisions(
    routers: list[Router],
    folds: list[list[str]],
    domains: np.ndarray,
    prompts: list[str],
    vectors: np.ndarray,
    tokens: list[int],
) -> np.ndarray:
    """Escalated or not, per held-out prompt, decided by the gateway's own code: the fold's
    router through ``live.advise_with`` and ``selection.select_model`` (cascade, cost)."""
    catalog = load_catalog(None, environ={"OPENAI_API_KEY": "bench"})
    prefs = Preferences(
        objective="cost", allowed=(CHEAP_STANDIN, STRONG_STANDIN), allow_cascade=True
    )
    embedder = _Vectors(prompts, vectors)
    strong = np.zeros(len(prompts), dtype=bool)
    for router, held_out in zip(routers, folds, strict=True):
        for i in np.flatnonzero(np.isin(domains, held_out)):
            advice = advise_with(router, embedder, prompts[i])
            choice = select_model(
                catalog, prefs, input_tokens=tokens[i], max_tokens=5, router=advice
            )
            strong[i] = choice.model.name == STRONG_STANDIN
    return strong


def latency(prompts: list[str], router: Router) -> dict[str, Any]:
    """One decision at a time, as the gateway makes it (``live.advise_with``), split into
    the MiniLM embedding of the prompt's head and the classifier (text features + dot)."""
    embedder = Embedder(max_tokens=router.embedding_max_tokens)
    embedder.embed(["warm up"])
    embed_times, classify_times, total_times = [], [], []
    for prompt in prompts:
        text = prompt[:4000]
        started = time.perf_counter()
        vector = embedder.embed([text])[0]
        embedded = time.perf_counter()
        router.predict(vector, text)
        done = time.perf_counter()
        advise_with(router, embedder, prompt)
        total = time.perf_counter() - done
        embed_times.append(embedded - started)
        classify_times.append(done - embedded)
        total_times.append(total)

    def summary(values: list[float]) -> dict[str, float]:
        ms = np.array(values) * 1000
        return {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "samples": len(values),
        }

    return {
        "embedding": summary(embed_times),
        "classifier": summary(classify_times),
        "decision_as_gateway": summary(total_times),
        "router_uses_embedding": router.uses_embedding,
        "embedding_max_tokens": router.embedding_max_tokens,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "prompts": "held-out MMLU prompts, one at a time (as the gateway does), 1 onnx thread",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CI size: 12 prompts per domain")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=4)
    parser.add_argument("--output-tokens", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only the decision latency: a router with embedding + text features, and the "
        "router `llmproxy router train` fits on all the data (the deployed one) "
        "-> bench/results/router_latency.json",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"routing data not found at {args.data}", file=sys.stderr)
        return 2
    out = args.out or RESULTS / ("router_smoke.json" if args.smoke else "router.json")
    started = time.perf_counter()
    data = load_mmlu(args.data, per_domain_limit=12 if args.smoke else 0)
    prompts = list(data.prompts)
    vectors = embed_cached(data.prompts, Embedder(max_tokens=ROUTING_MAX_TOKENS))
    domains = np.array(data.domains)
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    sample = [data.prompts[i] for i in range(0, len(data.prompts), max(1, len(data) // 300))]
    if args.latency_only:
        return latency_only(args, prompts, vectors, cheap_ok, strong_ok, sample)
    folds = domain_folds(data.domains, args.folds, args.seed)
    predicted, routers, reports = held_out_predictions(
        vectors,
        prompts,
        domains,
        cheap_ok,
        strong_ok,
        folds,
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
    rules = {r.rule for r in routers}
    scores = {
        # escalate when P(cheap correct) is low
        "cheap_confidence": escalation_key(predicted, "confidence"),
        # escalate when P(strong correct) - P(cheap correct) is high
        "expected_gain": escalation_key(predicted, "gain"),
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
            "used_by_gateway": name == {"confidence": "cheap_confidence", "gain": "expected_gain"}[
                routers[0].rule
            ]
            and len(rules) == 1,
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
                "random_accuracy_at_same_share": round(
                    random_accuracy(point.strong_share, acc_cheap, acc_strong), 4
                ),
            },
        }
    random_share = min(1.0, max(0.0, (target - acc_cheap) / (acc_strong - acc_cheap)))
    random_cost = random_share * strong_cost.sum() + (1 - random_share) * cheap_cost.sum()
    escalated = gateway_decisions(routers, folds, domains, prompts, vectors, tokens)
    calibrated_cost = float(np.where(escalated, strong_cost, cheap_cost).sum())
    calibrated_accuracy = float(np.where(escalated, strong_ok, cheap_ok).mean())
    for report in reports:
        test = np.isin(domains, report["held_out_domains"])
        report["test_strong_share"] = round(float(escalated[test].mean()), 4)
        report["test_accuracy"] = round(
            float(np.where(escalated[test], strong_ok[test], cheap_ok[test]).mean()), 4
        )
        report["test_strong_accuracy"] = round(float(strong_ok[test].mean()), 4)
    # the slowest kind of decision: a router that reads the embedding, when a fold chose one
    timed = next((r for r in routers if r.uses_embedding), routers[0])
    result = {
        "benchmark": "router",
        "command": ".venv/bin/python bench/router/run.py" + (" --smoke" if args.smoke else ""),
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
            "note": (
                "all accuracy/share numbers are from predictions on held-out domains only; "
                "setting, rule and threshold are chosen per fold on its training domains"
            ),
        },
        "router": {
            "features": (
                f"{MODEL_ID} embedding of the prompt's first {ROUTING_MAX_TOKENS} tokens "
                f"(384-d) + {len(TEXT_FEATURES)} text features (10 + degree-2 products) "
                f"+ hashed words ({WORD_BUCKETS} CRC-32 buckets, binary, L2-normalised)"
            ),
            "classifier": "logistic regression per model (scikit-learn), P(correct)",
            "settings_offered": [st.describe() for st in DEFAULT_SETTINGS],
            "rules_offered": ["confidence", "gain"],
            "code_path": "training.fit_policy (as `llmproxy router train`); decisions through "
            "live.advise_with + gateway.selection.select_model",
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
            "how": "the gateway's select_model with each fold's router (setting, rule and "
            "threshold chosen on training domains), applied blind to its held-out domains",
            "strong_share": round(float(escalated.mean()), 4),
            "accuracy": round(calibrated_accuracy, 4),
            "fraction_of_strong_accuracy": round(calibrated_accuracy / acc_strong, 4),
            "random_accuracy_at_same_share": round(
                random_accuracy(float(escalated.mean()), acc_cheap, acc_strong), 4
            ),
            "calls_saved_vs_all_strong": round(1 - float(escalated.mean()), 4),
            "cost_saved_vs_all_strong": round(1 - calibrated_cost / all_strong_cost, 4),
            "money_nanousd": {
                "all_strong": round(all_strong_cost),
                "routed": round(calibrated_cost),
                "saved": round(all_strong_cost - calibrated_cost),
            },
        },
        "decision_latency": latency(sample, timed),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwrote {out}")
    return 0


def latency_only(
    args: argparse.Namespace,
    prompts: list[str],
    vectors: np.ndarray,
    cheap_ok: np.ndarray,
    strong_ok: np.ndarray,
    sample: list[str],
) -> int:
    """The decision latency alone (no held-out evaluation), of two routers:

    * the embedding path: a router that reads both the embedding of the prompt's head
      (``ROUTING_MAX_TOKENS``) and the text features (its weights do not change the time) —
      the slowest decision there is;
    * the deployed router: what ``llmproxy router train`` (``jobs.train_router``, CLI
      defaults) fits on all the data and ``activate`` would put in the gateway — it uses
      the embedding only if the settings chosen on the data give it weight.
    """
    router = fit_router(
        vectors,
        {CHEAP_STANDIN: cheap_ok, STRONG_STANDIN: strong_ok},
        version="latency",
        embedding_model=MODEL_ID,
        prompts=prompts,
        text_features=True,
        embedding_weight=1.0,
        words_weight=1.0,
        regularization=0.01,
        rule="gain",
        embedding_max_tokens=ROUTING_MAX_TOKENS,
    )
    fit_started = time.perf_counter()
    deployed = train_router(
        version="deployed",
        embedder=Embedder(max_tokens=ROUTING_MAX_TOKENS),
        data_dir=args.data,
        per_domain_limit=12 if args.smoke else 0,
    )
    fit_s = time.perf_counter() - fit_started
    embedding_path = latency(sample, router)
    embedding_path["router"] = (
        "embedding path: embedding x1 + text features + words x1 (C=0.01, gain), fit on all "
        "the data; "
        "the slowest decision a router can need"
    )
    result = {
        "benchmark": "router decision latency",
        "command": ".venv/bin/python bench/router/run.py --latency-only"
        + (" --smoke" if args.smoke else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "decision_latency": embedding_path,
        "deployed_router": {
            "how": "jobs.train_router with the CLI's defaults (`llmproxy router train`) on "
            "every domain; decision_as_gateway is what the gateway spends per request with it "
            "(live.advise_with: no embedding when the router gives it no weight)",
            "chosen_setting": {
                "regularization_C": deployed.metrics["regularization_C"],
                "embedding_weight": deployed.metrics["embedding_weight"],
                "words_weight": deployed.metrics.get("words_weight", 0.0),
                "text_features": deployed.text_features,
                "rule": deployed.rule,
                "threshold": round(deployed.threshold, 4),
                "training_domains_strong_share": round(
                    deployed.metrics["calibration_strong_share"], 4
                ),
            },
            "train_prompts": int(deployed.metrics["train_prompts"]),
            "fit_s": round(fit_s, 1),
            "decision_latency": latency(sample, deployed),
        },
    }
    out = args.out or RESULTS / "router_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lat = result["decision_latency"]
    print(
        f"decision latency (load {lat['load_average_1_5_15']}): embedding "
        f"({lat['embedding_max_tokens']} tokens) p50 {lat['embedding']['p50_ms']:.2f} / p99 "
        f"{lat['embedding']['p99_ms']:.2f} ms; classifier p50 {lat['classifier']['p50_ms']:.3f}"
        f" / p99 {lat['classifier']['p99_ms']:.3f} ms; whole decision p50 "
        f"{lat['decision_as_gateway']['p50_ms']:.2f} / p99 "
        f"{lat['decision_as_gateway']['p99_ms']:.2f} ms  [embedding path: router with the "
        "embedding]"
    )
    dep = result["deployed_router"]
    lat = dep["decision_latency"]
    print(
        f"deployed router (`llmproxy router train` on all data: "
        f"{'uses' if lat['router_uses_embedding'] else 'does NOT use'} the embedding, "
        f"{dep['chosen_setting']}): whole decision as the gateway makes it p50 "
        f"{lat['decision_as_gateway']['p50_ms']:.2f} / p99 "
        f"{lat['decision_as_gateway']['p99_ms']:.2f} ms (load {lat['load_average_1_5_15']})"
        f"\nwrote {out}"
    )
    return 0


def print_table(result: dict[str, Any]) -> None:
    acc = result["accuracy"]
    print(
        f"MMLU, held-out domains: cheap {acc['cheap']:.3f}, strong {acc['strong']:.3f}, "
        f"target {acc['target_95pct_of_strong']:.3f} ({result['data']['prompts']} prompts)"
    )
    used = [n for n, r in result["rankings"].items() if r["used_by_gateway"]]
    main_name = used[0] if used else "cheap_confidence"
    main_ranking = result["rankings"][main_name]
    print(f"\ncurve of the {main_name} ranking (the gateway's rule)")
    print(f"{'strong share':>12} {'router acc':>11} {'random acc':>11}")
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
        f"\ndecision latency (load {lat['load_average_1_5_15']}): embedding "
        f"({lat['embedding_max_tokens']} tokens) p50 {lat['embedding']['p50_ms']:.2f} / p99 "
        f"{lat['embedding']['p99_ms']:.2f} ms; classifier p50 {lat['classifier']['p50_ms']:.3f}"
        f" / p99 {lat['classifier']['p99_ms']:.3f} ms; whole decision as the gateway makes it "
        f"p50 {lat['decision_as_gateway']['p50_ms']:.2f} / p99 "
        f"{lat['decision_as_gateway']['p99_ms']:.2f} ms"
    )
    if not lat["router_uses_embedding"]:
        print("  (this router gives the embedding no weight: the gateway does not embed)")


if __name__ == "__main__":
    sys.exit(main())
