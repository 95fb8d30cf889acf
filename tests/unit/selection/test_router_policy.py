"""The router policy: text features, the gain rule, fit_policy's choice on training domains,
and that the stored artifact routes exactly as the benchmark's ranking says."""

from __future__ import annotations

import numpy as np
import pytest

from llmproxy.gateway.catalog import parse_catalog
from llmproxy.gateway.selection import Preferences, select_model
from llmproxy.optimizer.router.features import TEXT_FEATURES, text_features
from llmproxy.optimizer.router.live import advise_with
from llmproxy.optimizer.router.model import Router, escalation_key, threshold_of_cut
from llmproxy.optimizer.router.training import Setting, fit_policy, fit_router
from llmproxy.platform.embeddings import WordHashEmbedder
from llmproxy.platform.errors import InvalidArgumentError

CALC = "What is 12.5 * 4 + 3^2?\nA. 59\nB. 62\nC. 50\nD. 41\nAnswer:"
WORDS = "Which philosopher wrote the Republic?\nA. Plato\nB. Kant\nC. Hume\nD. Locke\nAnswer:"


def test_text_features_see_calculations_and_are_bounded_in_time() -> None:
    calc, words = text_features(CALC), text_features(WORDS)
    assert calc.shape == words.shape == (len(TEXT_FEATURES),)
    numeric = TEXT_FEATURES.index("numeric_option_share")
    assert calc[numeric] == 1.0 and words[numeric] == 0.0
    assert calc[TEXT_FEATURES.index("has_four_options")] == 1.0
    # a huge prompt is read up to a bound: same features as its head
    assert np.array_equal(text_features("x" * 4000 + "y" * 10**6), text_features("x" * 4000))


def _data(n: int = 480, seed: int = 0):  # type: ignore[no-untyped-def]
    """Six 'domains'; calculation prompts are where the cheap model fails and the strong
    one does not."""
    rng = np.random.default_rng(seed)
    prompts, domains = [], []
    for i in range(n):
        calc = rng.random() < 0.4
        prompts.append(CALC.replace("12.5", str(i)) if calc else WORDS.replace("Plato", f"P{i}"))
        domains.append(f"d{i % 6}")
    is_calc = np.array(["*" in p for p in prompts])
    cheap = np.where(is_calc, rng.random(n) < 0.3, rng.random(n) < 0.85)
    strong = np.where(is_calc, rng.random(n) < 0.9, rng.random(n) < 0.88)
    vectors = WordHashEmbedder().embed(prompts)
    return vectors, prompts, domains, cheap, strong


def test_fit_policy_chooses_on_training_domains_and_routes_calculations_up() -> None:
    vectors, prompts, domains, cheap, strong = _data()
    fitted = fit_policy(
        vectors,
        prompts,
        domains,
        cheap,
        strong,
        cheap_model="small",
        strong_model="large",
        version="p1",
        embedding_model="hash",
        settings=(Setting(0.1, 0.0), Setting(1.0, 1.0, text_features=False)),
        inner_folds=3,
    )
    router = fitted.router
    assert len(fitted.tried) == 4  # two settings x two rules, all on training domains
    assert fitted.calibration.strong_share == min(fitted.tried.values())
    assert router.trained_on == tuple(f"d{i}" for i in range(6))
    p = router.predict_many(vectors, prompts)
    is_calc = np.array(["*" in x for x in prompts])
    assert p[is_calc, 0].mean() < p[~is_calc, 0].mean()
    assert (p[is_calc, 1] - p[is_calc, 0]).mean() > (p[~is_calc, 1] - p[~is_calc, 0]).mean()
    # a stored policy reads back the same
    again = Router.from_bytes(router.to_bytes())
    assert (again.rule, again.text_features, again.threshold) == (
        router.rule,
        router.text_features,
        router.threshold,
    )
    assert np.allclose(again.predict_many(vectors, prompts), p)


@pytest.mark.parametrize("rule", ["confidence", "gain"])
def test_the_gateway_escalates_exactly_the_prompts_below_the_benchmarks_cut(rule: str) -> None:
    """Same code, same decisions: the benchmark's key and cut, and the gateway's choice."""
    vectors, prompts, _domains, cheap, strong = _data(seed=1)
    router = fit_router(
        vectors,
        {"small": cheap, "large": strong},
        version="g",
        embedding_model="hash",
        prompts=prompts,
        text_features=True,
        embedding_weight=0.5,
        regularization=0.3,
        rule=rule,
    )
    key = escalation_key(router.predict_many(vectors, prompts), rule)
    distinct = np.unique(key)  # a cut between two keys (no prompt sits on it)
    cut = float((distinct[len(distinct) // 2 - 1] + distinct[len(distinct) // 2]) / 2)
    router = router.with_threshold(threshold_of_cut(cut, rule))
    catalog = parse_catalog(
        {
            "default_model": "small",
            "reference_model": "large",
            "models": [
                {"name": "small", "price_per_million": {"input": 0.1, "output": 0.4}},
                {"name": "large", "price_per_million": {"input": 2.5, "output": 10}},
            ],
        },
        environ={},
    )
    embedder = WordHashEmbedder()
    prefs = Preferences(objective="cost", allow_cascade=True)
    for i in range(0, len(prompts), 7):
        advice = advise_with(router, embedder, prompts[i])
        chosen = select_model(catalog, prefs, input_tokens=40, max_tokens=5, router=advice)
        assert (chosen.model.name == "large") == bool(key[i] < cut), i


def test_thresholds_are_checked_per_rule() -> None:
    vectors, _prompts, _, cheap, strong = _data(n=60)
    router = fit_router(vectors, {"a": cheap, "b": strong}, version="t", embedding_model="e")
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        router.with_threshold(-0.1)
    gain = fit_router(
        vectors, {"a": cheap, "b": strong}, version="t", embedding_model="e", rule="gain"
    )
    assert gain.with_threshold(-0.1).threshold == -0.1
    with pytest.raises(InvalidArgumentError, match="text"):
        fit_router(
            vectors,
            {"a": cheap, "b": strong},
            version="t",
            embedding_model="e",
            text_features=True,
        )


def test_feedback_verdicts_become_examples_for_the_model_classes() -> None:
    from llmproxy.optimizer.router.feedback import Answered, Verdict, feedback_examples

    answered = {
        "a": Answered("cheap and good", "small"),
        "b": Answered("cheap and bad", "small"),
        "c": Answered("strong and bad", "large"),
        "d": Answered("strong and good", "large"),
        "e": Answered("another model", "other"),
    }
    verdicts = [Verdict(r, g) for r, g in [("a", 0.0), ("a", 1.0), ("b", 0.0), ("c", 0.25)]]
    verdicts += [Verdict("d", 1.0), Verdict("e", 0.0), Verdict("unknown", 0.0)]
    examples = feedback_examples(answered, verdicts, cheap_model="small", strong_model="large")
    assert [(e.prompt, e.cheap_correct, e.strong_correct) for e in examples] == [
        ("cheap and good", True, True),  # the last verdict of a request wins
        ("cheap and bad", False, True),
        ("strong and bad", False, False),
    ]
    assert {e.domain for e in examples} == {"feedback"}


SCENARIO = (
    "For which of these two scenarios does the main character do something clearly morally "
    "wrong? Scenario 1 | I took the cake {i}. Scenario 2 | I gave it back.\n"
    "A. Wrong, Wrong\nB. Wrong, Not wrong\nC. Not wrong, Wrong\nD. Not wrong, Not wrong\nAnswer:"
)


def test_the_words_block_learns_a_question_type_and_survives_the_artifact() -> None:
    """Moral-scenario prompts are where the cheap model fails; with no embedding signal, a
    router with the words block ranks every one of them first for escalation; the
    stored artifact predicts the same, one prompt at a time as in a batch."""
    rng = np.random.default_rng(3)
    prompts = [
        SCENARIO.format(i=i) if i % 3 == 0 else WORDS.replace("Plato", f"P{i}") for i in range(300)
    ]
    scenario = np.array([i % 3 == 0 for i in range(300)])
    cheap = np.where(scenario, rng.random(300) < 0.3, rng.random(300) < 0.85)
    strong = np.where(scenario, rng.random(300) < 0.85, rng.random(300) < 0.88)
    vectors = np.zeros((300, 4), dtype=np.float32)  # no embedding signal at all
    labels = {"small": cheap, "large": strong}
    router = fit_router(
        vectors,
        labels,
        version="w",
        embedding_model="none",
        prompts=prompts,
        text_features=True,
        embedding_weight=0.0,
        words_weight=2.0,
        regularization=1.0,
        rule="gain",
    )
    assert router.word_weights is not None
    p = router.predict_many(vectors, prompts)
    gain = p[:, 1] - p[:, 0]
    assert gain[scenario].min() > gain[~scenario].max()
    again = Router.from_bytes(router.to_bytes())
    assert again.word_weights is not None
    single = np.array([list(again.predict(vectors[i], prompts[i]).values()) for i in range(300)])
    assert np.allclose(single, p, atol=1e-6)  # float32 word weights in the artifact
    # a router without the block stores none and reads back without one
    plain = fit_router(
        vectors, labels, version="p", embedding_model="none", prompts=prompts,
        text_features=True, embedding_weight=0.0, rule="gain",
    )  # fmt: skip
    assert plain.word_weights is None and Router.from_bytes(plain.to_bytes()).word_weights is None


def test_a_negative_words_weight_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="words_weight"):
        fit_router(
            np.zeros((4, 2)),
            {"a": np.array([True, False, True, False])},
            version="x",
            embedding_model="e",
            prompts=["a", "b", "c", "d"],
            words_weight=-1.0,
        )
