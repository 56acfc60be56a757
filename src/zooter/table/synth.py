"""The embedded default data: a seeded generator of routing tables that look like the real problem.

Each query has a primary domain (and, sometimes, a secondary one) and a fine-grained topic. Its text
is built from domain words and templates, so the text carries the routing signal. Each candidate has
a latent skill per domain plus a per-topic offset; the hidden quality of a (query, candidate) pair is

    z = w * skill[c, primary] + (1 - w) * skill[c, secondary] + topic_offset[c, topic] + noise
        (+ context_offset[c, context] with ``unexplained_sigma`` > 0; see below)

``scores_by_judge`` holds that quality as seen by several judges:

- ``true``: z itself (the hidden quality; use it as the evaluation judge);
- ``rm_low_noise``: z + N(0, low_noise^2), a good reward model (also written as ``scores``);
- ``rm_high_noise``: slope * z + per-candidate bias + N(0, high_noise^2), a noisy, biased reward model.

Reward-model cells are left null (not judged) with probability ``missing_rate`` per query, one
candidate at a time, so the masking code paths are exercised.

By default the tags are the latent variables themselves, so tag means are close to an oracle denoiser
by construction. Five knobs make the tags less informative (all 0 or 1 = off; at their defaults the
table is exactly the one of earlier versions): ``tag_noise`` (a share of queries get wrong tags),
``topic_merge`` and ``domain_merge`` (several latent groups share one tag), ``irrelevant_tags`` (tags
unrelated to quality) and ``unexplained_sigma`` (quality the query text carries but no tag does). Their
randomness comes from a second generator seeded from ``seed``, so the base table's draws never move.

``zooter synth --out FILE --table.<knob> VALUE`` writes a table (:func:`main`); ``zooter synth --help``
lists the knobs, the fields of :class:`SynthConfig`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zooter.table.schema import SCORES_JUDGE, RoutingTable, write_jsonl

DOMAIN_WORDS: dict[str, tuple[str, ...]] = {
    "code": (
        "python",
        "function",
        "recursion",
        "compiler",
        "pointer",
        "thread",
        "database",
        "query",
        "regex",
        "array",
        "hashmap",
        "exception",
        "debugger",
        "api",
        "json",
        "docker",
        "kernel",
        "closure",
        "iterator",
        "unittest",
        "refactor",
        "linter",
        "bytecode",
        "mutex",
        "socket",
        "callback",
        "generator",
        "decorator",
        "runtime",
        "segfault",
    ),
    "math": (
        "integral",
        "derivative",
        "matrix",
        "eigenvalue",
        "polynomial",
        "theorem",
        "proof",
        "limit",
        "probability",
        "vector",
        "equation",
        "prime",
        "logarithm",
        "series",
        "geometry",
        "triangle",
        "algebra",
        "fraction",
        "inequality",
        "lemma",
        "calculus",
        "factorial",
        "permutation",
        "median",
        "variance",
        "topology",
        "modulus",
        "sequence",
        "hyperbola",
        "quadratic",
    ),
    "writing": (
        "poem",
        "essay",
        "story",
        "metaphor",
        "character",
        "dialogue",
        "sonnet",
        "haiku",
        "plot",
        "narrator",
        "headline",
        "slogan",
        "paragraph",
        "letter",
        "speech",
        "rhyme",
        "chapter",
        "prologue",
        "satire",
        "limerick",
        "memoir",
        "tagline",
        "ballad",
        "fable",
        "monologue",
        "outline",
        "anecdote",
        "eulogy",
        "toast",
        "verse",
    ),
    "science": (
        "photosynthesis",
        "molecule",
        "quantum",
        "gravity",
        "neuron",
        "enzyme",
        "galaxy",
        "atom",
        "evolution",
        "ecosystem",
        "catalyst",
        "isotope",
        "protein",
        "plasma",
        "entropy",
        "genome",
        "electron",
        "climate",
        "bacteria",
        "telescope",
        "magnetism",
        "orbit",
        "fossil",
        "virus",
        "reaction",
        "spectrum",
        "tectonics",
        "mitosis",
        "neutrino",
        "hormone",
    ),
    "cooking": (
        "recipe",
        "sourdough",
        "saute",
        "marinade",
        "braise",
        "risotto",
        "pastry",
        "umami",
        "simmer",
        "dough",
        "spice",
        "broth",
        "grill",
        "ferment",
        "custard",
        "vinaigrette",
        "roast",
        "noodle",
        "dumpling",
        "casserole",
        "glaze",
        "caramel",
        "batter",
        "curry",
        "stew",
        "souffle",
        "brine",
        "tortilla",
        "pesto",
        "meringue",
    ),
    "history": (
        "empire",
        "revolution",
        "treaty",
        "dynasty",
        "pharaoh",
        "renaissance",
        "colony",
        "monarchy",
        "crusade",
        "senate",
        "medieval",
        "republic",
        "armistice",
        "feudalism",
        "archive",
        "chronicle",
        "conquest",
        "siege",
        "reformation",
        "industrialization",
        "independence",
        "constitution",
        "samurai",
        "viking",
        "caliphate",
        "parliament",
        "abolition",
        "migration",
        "trade-route",
        "manuscript",
    ),
    "finance": (
        "budget",
        "mortgage",
        "dividend",
        "portfolio",
        "inflation",
        "bond",
        "equity",
        "loan",
        "interest",
        "tax",
        "pension",
        "invoice",
        "revenue",
        "asset",
        "liability",
        "hedge",
        "valuation",
        "liquidity",
        "audit",
        "payroll",
        "annuity",
        "derivative-contract",
        "credit",
        "savings",
        "stock",
        "ledger",
        "cashflow",
        "forex",
        "margin",
        "startup",
    ),
    "health": (
        "sleep",
        "nutrition",
        "exercise",
        "vitamin",
        "stress",
        "posture",
        "hydration",
        "meditation",
        "cardio",
        "protein-intake",
        "allergy",
        "migraine",
        "injury",
        "stretching",
        "metabolism",
        "immunity",
        "therapy",
        "anxiety",
        "diet",
        "recovery",
        "blood-pressure",
        "cholesterol",
        "fatigue",
        "symptom",
        "vaccine",
        "dosage",
        "physiotherapy",
        "wellbeing",
        "fasting",
        "ergonomics",
    ),
}

TEMPLATES = (
    "How do I deal with {a} when {b} is involved?",
    "Explain the difference between {a} and {b}.",
    "Write a short note about {a}, {b} and {c}.",
    "What is the best way to approach {a} if I already know {b}?",
    "Can you help me with {a}? I keep getting stuck on {b} and {c}.",
    "Give three tips on {a} for someone who is new to {b}.",
    "Why does {a} matter for {b}? Please mention {c}.",
    "Summarize what an expert would say about {a} and {b}.",
)

CANDIDATE_NAMES = ("generalist", "coder", "mathematician", "writer", "scientist", "chatty")
JUDGES = ("true", "rm_low_noise", "rm_high_noise")
# irrelevant tags: a requested tone, named in the query and tagged ``style/<word>``; no candidate cares
STYLE_WORDS = ("formal", "casual", "concise", "detailed", "friendly", "neutral", "playful", "polite", "direct",
               "cheerful", "serious", "simple")  # fmt: skip
# the unexplained quality: a context named in the query, never tagged, with its own per-candidate offset
CONTEXT_WORDS = ("urgent", "beginner", "expert", "exam", "interview", "hobby", "homework", "production", "research",
                 "legacy", "mobile", "offline", "kids", "team", "deadline", "weekend")  # fmt: skip
KNOB_STREAM = 1  # the tag-informativeness knobs draw from default_rng([seed, KNOB_STREAM])


@dataclass
class SynthConfig:
    """Sizes and noise levels of a synthetic routing table (all generation is seeded).

    Args:
        num_queries: rows of the table.
        num_candidates: candidate LLMs: a generalist (the best single model on average), then
            specialists, each strong in one domain (``generalist``, ``coder``, ..., ``model_6``, ...).
        num_domains: query domains, 1 to 8 (code, math, writing, science, cooking, history, finance,
            health); each query's first tag.
        topics_per_domain: fine-grained topics per domain (a pair of domain words in the query and a
            ``domain/word_word`` tag); each topic shifts every candidate's quality by its own offset.
        secondary_domain_prob: probability that a query also draws on a second domain (a third tag).
        primary_weight: weight of the primary domain's skill in a query's quality (the secondary
            domain gets the rest).
        skill_spread: scale of the candidates' latent domain skills: larger gaps between candidates
            make routing matter more.
        topic_sigma: standard deviation of the per-topic quality offsets (signal only fine tags and
            the query text carry).
        query_sigma: standard deviation of the per-query, per-candidate quality noise (no feature
            predicts it).
        low_noise: noise standard deviation of the good reward model ``rm_low_noise`` (= ``scores``).
        high_noise: noise standard deviation of the noisy reward model ``rm_high_noise``.
        high_noise_slope: how strongly ``rm_high_noise`` follows the true quality (its slope).
        high_noise_bias: how much ``rm_high_noise`` over-rates the last candidate.
        missing_rate: share of queries in which the reward models leave one candidate unjudged (null).
        seed: seed of the whole table (the same config gives the same table).
        tag_noise: share of queries whose tags are all replaced by the tags of a random latent group of
            the same kinds (a uniform domain, a uniform topic of it, and a uniform other domain where the
            query has a secondary tag). Text and quality are untouched; at 1 the tags are independent of
            every latent variable, so tag means carry no skill signal.
        topic_merge: k >= 1 latent topics share one topic tag: topic t of a domain is tagged as topic
            ``k * (t // k)`` (so a domain has ceil(topics_per_domain / k) topic tags). Quality keeps
            its per-topic offsets, so a merged tag averages k topics' offsets.
        domain_merge: k >= 1 latent domains share one domain tag: domain d is tagged with the name of
            domain ``k * (d // k)``, in the first and the secondary tag and as the topic tag's prefix
            (topic tags keep their own words, so they still tell the latent domain apart).
            Quality is unchanged; a merged tag averages the skills of k domains.
        irrelevant_tags: number of ``style/<word>`` tags added per query (distinct words out of 12,
            uniform, independent of everything else); the query asks for that tone ("Keep it formal.").
            No candidate's quality depends on them.
        unexplained_sigma: standard deviation of a per-candidate quality offset attached to one of 16
            context words (uniform per query, named in the query text as "(context: exam)", never
            tagged): quality the text carries and no tag explains. ``query_sigma`` is the other kind:
            noise that neither text nor tags carry, which no router can learn. 0 adds no word.
    """

    num_queries: int = 4000
    num_candidates: int = 6
    num_domains: int = 8
    topics_per_domain: int = 12
    secondary_domain_prob: float = 0.3
    primary_weight: float = 0.7
    skill_spread: float = 1.0
    topic_sigma: float = 0.4
    query_sigma: float = 0.3
    low_noise: float = 0.3
    high_noise: float = 1.5
    high_noise_slope: float = 0.8
    high_noise_bias: float = 0.5
    missing_rate: float = 0.02
    seed: int = 0
    tag_noise: float = 0.0
    topic_merge: int = 1
    domain_merge: int = 1
    irrelevant_tags: int = 0
    unexplained_sigma: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.num_domains <= len(DOMAIN_WORDS):
            raise ValueError(f"num_domains must be in 1..{len(DOMAIN_WORDS)}, got {self.num_domains}")
        words = min(len(w) for w in DOMAIN_WORDS.values())
        if not 1 <= self.topics_per_domain <= words * (words - 1):
            raise ValueError(f"topics_per_domain must be in 1..{words * (words - 1)}, got {self.topics_per_domain}")
        if self.num_candidates < 2 or self.num_queries < 1:
            raise ValueError("need num_candidates >= 2 and num_queries >= 1")
        if not 0.0 <= self.tag_noise <= 1.0:
            raise ValueError(f"tag_noise must be in [0, 1], got {self.tag_noise}")
        if self.topic_merge < 1 or self.domain_merge < 1:
            raise ValueError(f"topic_merge and domain_merge must be >= 1, got {self.topic_merge}, {self.domain_merge}")
        if not 0 <= self.irrelevant_tags <= len(STYLE_WORDS):
            raise ValueError(f"irrelevant_tags must be in 0..{len(STYLE_WORDS)}, got {self.irrelevant_tags}")
        if self.unexplained_sigma < 0:
            raise ValueError(f"unexplained_sigma must be >= 0, got {self.unexplained_sigma}")


def candidate_names(num_candidates: int) -> list[str]:
    """Readable candidate names: the first six are fixed, then ``model_6``, ``model_7``, ..."""
    return [CANDIDATE_NAMES[k] if k < len(CANDIDATE_NAMES) else f"model_{k}" for k in range(num_candidates)]


def latent_skills(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Skill ``[candidates, domains]``: a flat generalist, then specialists strong in one domain each."""
    n, d = config.num_candidates, config.num_domains
    skills = rng.normal(-0.3, 0.25, size=(n, d)) * config.skill_spread
    skills[0] = 0.35 * config.skill_spread  # the generalist: the best single model on average
    for k in range(1, n):
        skills[k, (k - 1) % d] = 1.0 * config.skill_spread
    return skills


@dataclass(frozen=True)
class KnobDraws:
    """The tag-informativeness knobs' randomness, all drawn whatever the knobs are (one knob never moves
    another's draws), from a generator of its own (the base table's draws never move)."""

    context: np.ndarray  # [queries]: index into CONTEXT_WORDS
    context_offset: np.ndarray  # [candidates, contexts]: quality offsets, N(0, unexplained_sigma^2)
    noisy: np.ndarray  # [queries]: the query's tags are replaced (tag_noise)
    fake_primary: np.ndarray  # [queries]: the replacing tags' domain, topic and secondary domain
    fake_topic: np.ndarray
    fake_secondary: np.ndarray
    style: np.ndarray  # [queries, irrelevant_tags]: distinct indices into STYLE_WORDS

    @classmethod
    def draw(cls, config: SynthConfig) -> KnobDraws:
        rng = np.random.default_rng([config.seed, KNOB_STREAM])
        n_q, n_d = config.num_queries, config.num_domains
        context = rng.integers(0, len(CONTEXT_WORDS), n_q)
        context_offset = rng.normal(0.0, 1.0, (config.num_candidates, len(CONTEXT_WORDS))) * config.unexplained_sigma
        noisy = rng.random(n_q) < config.tag_noise
        fake_primary = rng.integers(0, n_d, n_q)
        fake_topic = rng.integers(0, config.topics_per_domain, n_q)
        fake_secondary = (fake_primary + rng.integers(1, max(n_d, 2), n_q)) % n_d
        style = np.argsort(rng.random((n_q, len(STYLE_WORDS))), axis=1)[:, : config.irrelevant_tags]
        return cls(context, context_offset, noisy, fake_primary, fake_topic, fake_secondary, style)


def generate(config: SynthConfig | None = None) -> RoutingTable:
    """Generate a routing table; the same config gives the same table."""
    config = config or SynthConfig()
    rng = np.random.default_rng(config.seed)
    domains = list(DOMAIN_WORDS)[: config.num_domains]
    n_q, n_c = config.num_queries, config.num_candidates

    skills = latent_skills(config, rng)
    topic_offset = rng.normal(0.0, config.topic_sigma, size=(n_c, config.num_domains, config.topics_per_domain))
    primary = rng.integers(0, config.num_domains, n_q)
    has_secondary = (rng.random(n_q) < config.secondary_domain_prob) & (config.num_domains > 1)
    secondary = (primary + rng.integers(1, max(config.num_domains, 2), n_q)) % config.num_domains
    secondary = np.where(has_secondary, secondary, primary)
    topic = rng.integers(0, config.topics_per_domain, n_q)
    template = rng.integers(0, len(TEMPLATES), n_q)
    filler = rng.integers(0, 1 << 30, n_q)

    quality = (
        config.primary_weight * skills[:, primary].T
        + (1 - config.primary_weight) * skills[:, secondary].T
        + topic_offset[:, primary, topic].T
        + rng.normal(0.0, config.query_sigma, size=(n_q, n_c))
    )
    knobs = KnobDraws.draw(config)
    if config.unexplained_sigma > 0:
        quality += knobs.context_offset[:, knobs.context].T
    bias = np.zeros(n_c)
    bias[-1] = config.high_noise_bias  # the last candidate is over-rated by the noisy RM
    judged = {
        "true": quality,
        "rm_low_noise": quality + rng.normal(0.0, config.low_noise, size=(n_q, n_c)),
        "rm_high_noise": config.high_noise_slope * quality + bias + rng.normal(0.0, config.high_noise, (n_q, n_c)),
    }
    missing_rows = np.flatnonzero(rng.random(n_q) < config.missing_rate)
    missing_cols = rng.integers(0, n_c, missing_rows.size)
    for judge in ("rm_low_noise", "rm_high_noise"):
        judged[judge][missing_rows, missing_cols] = np.nan

    tag_primary = np.where(knobs.noisy, knobs.fake_primary, primary)
    tag_topic = np.where(knobs.noisy, knobs.fake_topic, topic)
    tag_secondary = np.where(knobs.noisy, knobs.fake_secondary, secondary)
    queries, tags = [], []
    for i in range(n_q):
        words_p, words_s = DOMAIN_WORDS[domains[primary[i]]], DOMAIN_WORDS[domains[secondary[i]]]
        a, b = _topic_words(int(topic[i]), len(words_p))
        c = words_s[filler[i] % len(words_s)]
        text = TEMPLATES[template[i]].format(a=words_p[a], b=words_p[b], c=c)
        styles = [STYLE_WORDS[k] for k in knobs.style[i]]
        if styles:
            text += f" Keep it {' and '.join(styles)}."
        if config.unexplained_sigma > 0:
            text += f" (context: {CONTEXT_WORDS[knobs.context[i]]})"
        queries.append(text)
        second = int(tag_secondary[i]) if has_secondary[i] else None
        tags.append(_row_tags(config, domains, int(tag_primary[i]), int(tag_topic[i]), second, styles))

    scores = {name: np.round(matrix, 4) for name, matrix in judged.items()}
    scores = {SCORES_JUDGE: scores["rm_low_noise"], **scores}
    width = len(str(n_q - 1))
    return RoutingTable(
        ids=[f"synth-{i:0{width}d}" for i in range(n_q)],
        queries=queries,
        tags=tags,
        candidates=candidate_names(n_c),
        scores=scores,
        source=synth_source(config),
    )


def synth(table: SynthConfig, out: Path = Path("data/synth.jsonl")) -> Path:
    """Write a synthetic routing table as JSON Lines.

    Args:
        table: generator settings (sizes, noise levels, seed), e.g. ``--table.num_queries 48000``.
        out: output file (.jsonl).
    """
    started = time.perf_counter()
    generated = generate(table)
    path = write_jsonl(generated, out)
    tags = {t for row_tags in generated.tags for t in row_tags}
    print(
        f"zooter synth: {len(generated)} queries x {len(generated.candidates)} candidates, {len(tags)} tags, "
        f"judges {generated.judges} -> {path} ({time.perf_counter() - started:.1f}s)"
    )
    return path


def main(argv: list[str] | None = None) -> None:
    """``zooter synth``: every :class:`SynthConfig` field is a ``--table.<name>`` flag with its help."""
    from jsonargparse import CLI

    CLI(synth, args=argv, prog="zooter synth")


def synth_source(config: SynthConfig) -> str:
    """A short name of a synthetic table: its settings that differ from the defaults."""
    always = ("num_queries", "seed")
    changed = {k: v for k, v in asdict(config).items() if k in always or v != getattr(SynthConfig, k, None)}
    return "synth(" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"


def _row_tags(
    config: SynthConfig, domains: list[str], primary: int, topic: int, secondary: int | None, styles: list[str]
) -> list[str]:
    """A query's tags for latent (primary, topic, secondary): domain, ``domain/word_word``, secondary
    domain, then ``style/<word>``; merged groups named after their first member, repeats dropped."""

    def domain_tag(domain: int) -> str:
        return domains[domain // config.domain_merge * config.domain_merge]

    words = DOMAIN_WORDS[domains[primary]]
    a, b = _topic_words(topic // config.topic_merge * config.topic_merge, len(words))
    row = [domain_tag(primary), f"{domain_tag(primary)}/{words[a]}_{words[b]}"]
    if secondary is not None:
        row.append(domain_tag(secondary))
    row += [f"style/{style}" for style in styles]
    return list(dict.fromkeys(row))


def _topic_words(topic: int, vocabulary: int) -> tuple[int, int]:
    """The two distinct word positions that name topic number ``topic``."""
    first, offset = divmod(topic, vocabulary - 1)
    second = (first + 1 + offset) % vocabulary
    return first, second
