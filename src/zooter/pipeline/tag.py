"""``zooter tag QUERIES --out OUT``: give tags to the queries that have none.

Tags feed the tag-based label enhancement (each training query's target mixes with the mean label of
the training queries that share its tags). The input is any file of query rows (``.jsonl``,
``.parquet``, ``.csv``; a unique non-empty ``id`` and a non-empty ``query`` per row); the output is
the same rows, in the same order, with all their fields and ``tags`` set, written atomically as JSON
Lines. With ``--keep_existing true`` (the default) rows that already have non-empty ``tags`` keep them
and only the others are tagged; with ``false`` every row gets new tags.

Methods:

- ``cluster`` (default; offline, cheap): the queries are embedded with an encoder (``--encoder``,
  default the packaged all-MiniLM-L6-v2; any name :func:`zooter.routers.encoders.build_encoder` accepts),
  mean-pooled and L2-normalised, and clustered with k-means (``--num_tags`` clusters). A query gets
  the cluster whose (normalised) centroid is most cosine-similar to it, plus every other cluster
  within ``--margin`` of that similarity, up to ``--max_tags_per_query`` (see
  :func:`assign_clusters`). Clusters are numbered by size (``c00`` is the largest) and named after
  their most distinctive words: the words whose mean TF-IDF weight (English stop words removed) is
  highest inside the cluster relative to the rest, e.g. ``c03:poem-haiku-rhyme``. Only the queries
  being tagged are clustered.
- ``instag``: an InsTag-style generative tagger (Lu et al. 2023, arXiv 2308.07074), by default the
  Hugging Face model ``OFA-Sys/InsTagger`` (a hub id or a local directory; with ``HF_HUB_OFFLINE=1``
  it must already be cached). Each query is put into the prompt :data:`INSTAG_PROMPT`::

      You are a helpful assistant. Please identify tags of user intentions in the following user
      query and provide an explanation for each tag. Please respond in the JSON format
      [{"tag": str, "explanation": str}, ...].
      User query: <the query>

  wrapped in the tokenizer's chat template as one user message when the tokenizer has one, else
  used as it is. Decoding is greedy (``--max_new_tokens``), batched with left padding. The answer is
  parsed by :func:`parse_instag_output` (the first JSON list of ``{"tag": ...}`` objects or of
  strings, also inside a fenced block or surrounded by prose; tags lower-cased, whitespace collapsed,
  duplicates dropped). A query whose answer has no parseable tags gets no new tags: such queries are
  counted and reported with example ids, never dropped from the output.

``--min_tag_count N`` removes new tags given to fewer than N queries (counted and reported). Next to
the output, ``<out stem>.tags.md`` and ``<out stem>.tags.json`` list the tag vocabulary of the output
rows: each tag, its number of queries, its share of all rows and up to 3 example queries (with
``cluster``: the queries nearest the centroid), largest tags first.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zooter.files import write_text_atomic
from zooter.pipeline.hf_lm import (
    batches,
    chat_prompt,
    encode_prompts,
    generate_batch,
    has_chat_template,
    load_causal_lm,
    pad_left,
)
from zooter.pipeline.journal import read_query_rows, write_rows_atomic
from zooter.table.schema import TableError

INSTAG_PROMPT = (
    "You are a helpful assistant. Please identify tags of user intentions in the following user query and "
    "provide an explanation for each tag. Please respond in the JSON format "
    '[{{"tag": str, "explanation": str}}, ...].\n'
    "User query: {query}"
)
NAME_WORDS = 3  # distinctive words in a cluster's name
EXAMPLES = 3  # example queries per tag in the report
PRINTED_TAGS = 15  # tags printed to stdout


@dataclass
class TagOptions:
    """Settings of ``zooter tag``.

    Args:
        out: output file (.jsonl): the input rows, in order, with ``tags`` set; the vocabulary report goes
            next to it (``<stem>.tags.md`` and ``<stem>.tags.json``).
        method: ``cluster`` (k-means over sentence embeddings; offline) or ``instag`` (a generative
            InsTag tagger, a Hugging Face causal LM).
        num_tags: cluster: number of k-means clusters (at most the number of queries to tag).
        margin: cluster: a query also gets every cluster whose cosine similarity to its centroid is within
            ``margin`` of the nearest centroid's (0: one tag per query).
        max_tags_per_query: cluster: most tags per query (the nearest cluster first).
        encoder: cluster: the sentence encoder: ``minilm`` (packaged all-MiniLM-L6-v2), a hub id or a
            local directory.
        batch_size: queries per forward pass (embedding or generation).
        seed: cluster: k-means seed.
        n_init: cluster: k-means restarts (the best is kept).
        model: instag: the tagger, a hub id or a local directory.
        max_new_tokens: instag: most generated tokens per query.
        keep_existing: rows that already have non-empty ``tags`` keep them; false: every row is tagged anew.
        min_tag_count: new tags given to fewer queries than this are removed.
        progress: show progress bars.
    """

    out: str
    method: Literal["cluster", "instag"] = "cluster"
    num_tags: int = 30
    margin: float = 0.0
    max_tags_per_query: int = 3
    encoder: str = "minilm"
    batch_size: int = 64
    seed: int = 0
    n_init: int = 10
    model: str = "OFA-Sys/InsTagger"
    max_new_tokens: int = 128
    keep_existing: bool = True
    min_tag_count: int = 1
    progress: bool = True

    def check(self) -> None:
        for name in ("num_tags", "max_tags_per_query", "batch_size", "n_init", "max_new_tokens", "min_tag_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if not self.margin >= 0:
            raise ValueError(f"--margin must be a number >= 0, got {self.margin}")
        if Path(self.out).suffix.lower() != ".jsonl":
            raise ValueError(f"--out must be a .jsonl file (tagged rows are written as JSON Lines), got {self.out}")


# ---------------------------------------------------------------------------------------------- cluster


def assign_clusters(similarities: np.ndarray, margin: float, max_tags: int) -> list[list[int]]:
    """Clusters per query from a ``[queries, clusters]`` similarity matrix.

    Each query gets its most similar cluster (ties: the lower index) and, when ``margin > 0``, every
    other cluster whose similarity is within ``margin`` of that one (inclusive, up to float rounding),
    most similar first, at most ``max_tags``. ``margin == 0`` gives exactly one cluster per query.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    if similarities.ndim != 2 or similarities.shape[1] == 0:
        raise ValueError(f"expected a [queries, clusters] matrix with clusters, got shape {similarities.shape}")
    if margin < 0 or max_tags < 1:
        raise ValueError(f"need margin >= 0 and max_tags >= 1, got {margin} and {max_tags}")
    assigned = []
    for row in similarities:
        order = np.argsort(-row, kind="stable")
        if margin == 0:
            assigned.append([int(order[0])])
            continue
        floor = row[order[0]] - margin - 1e-9
        assigned.append([int(c) for c in order[:max_tags] if row[c] >= floor])
    return assigned


def name_clusters(texts: Sequence[str], labels: np.ndarray, num_clusters: int, words: int = NAME_WORDS) -> list[str]:
    """``cNN:word-word-word`` per cluster: its words of highest mean TF-IDF inside minus outside."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    width = max(2, len(str(num_clusters - 1)))
    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{2,}\b", sublinear_tf=True)
    try:
        weights = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # only stop words, numbers or punctuation: no vocabulary to name clusters with
        return [f"c{c:0{width}d}" for c in range(num_clusters)]
    vocabulary = vectorizer.get_feature_names_out()
    labels = np.asarray(labels)
    names = []
    for cluster in range(num_clusters):
        inside = labels == cluster
        score = np.zeros(len(vocabulary))
        if inside.any():
            score += np.asarray(weights[inside].mean(axis=0)).ravel()
        if (~inside).any():
            score -= np.asarray(weights[~inside].mean(axis=0)).ravel()
        order = np.lexsort((vocabulary, -score))  # highest score first, ties alphabetically
        top = [str(vocabulary[j]) for j in order[:words] if score[j] > 0]
        names.append(f"c{cluster:0{width}d}" + (":" + "-".join(top) if top else ""))
    return names


def cluster_tags(texts: Sequence[str], options: TagOptions) -> tuple[list[list[str]], list[float]]:
    """Tags per text by k-means over normalised sentence embeddings (see the module docstring), and
    each text's cosine similarity to its nearest centroid (how typical it is of its first tag)."""
    from sklearn.cluster import KMeans

    from zooter.routers import encoders

    k = options.num_tags
    if k > len(texts):
        raise ValueError(f"--num_tags {k} is larger than the number of queries to tag ({len(texts)})")
    distinct = len(set(texts))
    if k > distinct:
        raise ValueError(f"--num_tags {k} is larger than the number of distinct queries to tag ({distinct})")
    started = time.perf_counter()
    try:
        tokenizer = encoders.build_tokenizer(options.encoder, train_texts=texts)
        model = encoders.build_encoder(options.encoder, vocab_size=len(tokenizer))
    except (OSError, ImportError) as err:
        raise ValueError(f"cannot load encoder {options.encoder!r}: {err}") from None
    vectors = encoders.embed_texts(texts, tokenizer, model, options.batch_size, progress=options.progress)
    vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    embedded = time.perf_counter() - started
    kmeans = KMeans(n_clusters=k, n_init=options.n_init, random_state=options.seed).fit(vectors)
    centroids = kmeans.cluster_centers_ / np.clip(
        np.linalg.norm(kmeans.cluster_centers_, axis=1, keepdims=True), 1e-12, None
    )
    similarities = vectors @ centroids.T
    # number clusters by the size of their nearest-centroid membership (ties: earliest member), empty ones last
    nearest = similarities.argmax(axis=1)
    sizes = np.bincount(nearest, minlength=k)
    first = [int(np.flatnonzero(nearest == c)[0]) if sizes[c] else len(texts) + c for c in range(k)]
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    similarities = similarities[:, order]
    names = name_clusters(texts, similarities.argmax(axis=1), k)
    assigned = assign_clusters(similarities, options.margin, options.max_tags_per_query)
    empty = int((sizes == 0).sum())
    print(
        f"zooter tag: cluster: {len(texts)} queries embedded with {options.encoder} in {embedded:.1f}s, "
        f"{k} k-means clusters" + (f" ({empty} with no nearest query)" if empty else "")
    )
    return [[names[c] for c in clusters] for clusters in assigned], similarities.max(axis=1).tolist()


# ----------------------------------------------------------------------------------------------- instag


def parse_instag_output(text: str) -> list[str] | None:
    """Tags from a tagger's answer, or None when it holds none.

    Takes the first JSON list in ``text`` (also inside a fenced code block or prose) that holds
    ``{"tag": str, ...}`` objects or strings; other items are ignored. An answer cut off inside such
    a list (``[{"tag": "a", ...}, {"tag": "b", "expl``) gives the tags it completed. Tags are
    stripped, lower-cased and their whitespace collapsed; duplicates are dropped, order kept.
    """
    decoder = json.JSONDecoder(strict=False)  # strict=False: raw tabs and newlines inside strings are fine
    for match in re.finditer(r"\[", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, list):
            tags = _normalise_tags(value)
            if tags:
                return tags
    opened = re.search(r"\[\s*\{", text)  # a list of objects that never closes: generation ran out of tokens
    if opened:
        found = []
        for raw in re.findall(r'"tag"\s*:\s*("(?:[^"\\]|\\.)*")', text[opened.start() :]):
            try:
                found.append(decoder.decode(raw))
            except ValueError:  # a broken escape
                continue
        tags = _normalise_tags(found)
        if tags:
            return tags
    return None


def _normalise_tags(items: list[Any]) -> list[str]:
    tags: list[str] = []
    for item in items:
        raw = item.get("tag") if isinstance(item, dict) else item
        if not isinstance(raw, str):
            continue
        tag = " ".join(raw.split()).lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def instag_prompts(queries: Sequence[str], tokenizer: Any) -> tuple[list[str], bool]:
    """The prompts, and whether they went through the tokenizer's chat template."""
    prompts = [chat_prompt(tokenizer, INSTAG_PROMPT.format(query=query))[0] for query in queries]
    return prompts, has_chat_template(tokenizer)


def generate_texts(
    prompts: Sequence[str],
    tokenizer: Any,
    model: Any,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    add_special_tokens: bool = True,
    progress: bool = False,
) -> list[str]:
    """Greedy continuations of ``prompts`` (only the new text), batched with left padding."""
    from tqdm.auto import tqdm

    if not pad_left(tokenizer):
        raise ValueError("the tagger's tokenizer has neither a padding nor an end-of-sequence token")
    device = next(model.parameters()).device
    model.eval()
    texts: list[str] = []
    for batch in tqdm(batches(range(len(prompts)), batch_size), desc="tagging", unit="batch", disable=not progress):
        inputs = encode_prompts(tokenizer, [prompts[i] for i in batch], add_special_tokens, device)
        texts.extend(generate_batch(model, tokenizer, inputs, do_sample=False, max_new_tokens=max_new_tokens))
    return texts


def load_tagger(name: str) -> tuple[Any, Any]:
    """Tokenizer and causal LM of an InsTag tagger (a hub id or a local directory): on the GPU in bfloat16
    when there is one, else on the CPU in ``from_pretrained``'s default dtype."""
    import torch

    cuda = torch.cuda.is_available()
    try:
        return load_causal_lm(name, "cuda" if cuda else None, torch.bfloat16 if cuda else None)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot load the InsTag model {name!r} ({first_line}). Download it once with network access "
            f"(`hf download {name}`, or any from_pretrained call without HF_HUB_OFFLINE=1), or pass "
            "--model a local directory, or use --method cluster (offline)."
        ) from None


def instag_tags(ids: Sequence[str], texts: Sequence[str], options: TagOptions) -> tuple[list[list[str]], list[str]]:
    """Tags per text from the generative tagger, and the ids whose answers held no parseable tags."""
    started = time.perf_counter()
    tokenizer, model = load_tagger(options.model)
    prompts, templated = instag_prompts(texts, tokenizer)
    answers = generate_texts(
        prompts,
        tokenizer=tokenizer,
        model=model,
        batch_size=options.batch_size,
        max_new_tokens=options.max_new_tokens,
        add_special_tokens=not templated,
        progress=options.progress,
    )
    if len(answers) != len(texts):
        raise RuntimeError(f"the tagger returned {len(answers)} answers for {len(texts)} queries")
    tags: list[list[str]] = []
    failed: list[str] = []
    for row_id, answer in zip(ids, answers, strict=True):
        parsed = parse_instag_output(answer)
        if parsed is None:
            failed.append(row_id)
        tags.append(parsed or [])
    print(
        f"zooter tag: instag: {len(texts)} queries tagged by {options.model} "
        f"({'chat template' if templated else 'plain prompt'}) in {time.perf_counter() - started:.1f}s"
    )
    return tags, failed


# ---------------------------------------------------------------------------------------------- command


def _existing_tags(row: dict[str, Any]) -> list[str]:
    tags = row.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TableError(f"id={row['id']!r}: field 'tags': expected a list of strings, got {tags!r}")
    return tags


def drop_rare(tags: list[list[str]], min_count: int) -> tuple[list[list[str]], dict[str, int]]:
    """The tag lists without tags held by fewer than ``min_count`` of them, and the removed tags' counts."""
    counts = Counter(tag for row_tags in tags for tag in row_tags)
    rare = {tag: n for tag, n in counts.items() if n < min_count}
    return [[tag for tag in row_tags if tag not in rare] for row_tags in tags], rare


def vocabulary(rows: Sequence[dict[str, Any]], typicality: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Each tag of ``rows`` with its number of queries, share of rows and example queries, largest first.

    The examples are the rows with the highest ``typicality`` (e.g. similarity to the cluster centroid),
    else the first rows in file order.
    """
    members: dict[str, list[int]] = {}
    order = range(len(rows)) if typicality is None else sorted(range(len(rows)), key=lambda i: -typicality[i])
    for index in order:
        for tag in dict.fromkeys(rows[index].get("tags") or []):
            members.setdefault(tag, []).append(index)
    ranked = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))
    return [
        {
            "tag": tag,
            "count": len(indices),
            "share": len(indices) / len(rows),
            "examples": [rows[i]["query"] for i in indices[:EXAMPLES]],
        }
        for tag, indices in ranked
    ]


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_paths(out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    return out.with_name(f"{out.stem}.tags.md"), out.with_name(f"{out.stem}.tags.json")


def write_report(summary: dict[str, Any], vocab: list[dict[str, Any]], out: str | Path) -> tuple[Path, Path]:
    md_path, json_path = report_paths(out)
    write_text_atomic(json_path, json.dumps({**summary, "tags": vocab}, indent=2, ensure_ascii=False) + "\n")
    lines = [
        f"# Tags of {summary['input']}",
        "",
        f"{summary['rows']} rows: {summary['tagged']} tagged now ({summary['options']['method']}), "
        f"{summary['kept']} kept their tags, {summary['untagged']} without tags; {len(vocab)} distinct tags.",
    ]
    if summary["unparseable"]["count"]:
        lines.append(
            f"{summary['unparseable']['count']} tagger answers had no parseable tags "
            f"(e.g. {', '.join(summary['unparseable']['examples'])})."
        )
    if summary["removed_rare"]["tags"]:
        lines.append(
            f"{summary['removed_rare']['tags']} tags given to fewer than {summary['options']['min_tag_count']} "
            f"queries were removed ({summary['removed_rare']['assignments']} assignments)."
        )
    lines += ["", "| tag | queries | share | examples |", "|---|---:|---:|---|"]
    for entry in vocab:
        examples = " · ".join(_short(q).replace("|", "\\|") for q in entry["examples"])
        lines.append(f"| `{entry['tag']}` | {entry['count']} | {entry['share']:.1%} | {examples} |")
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return md_path, json_path


def run_tag(queries: str | Path, options: TagOptions) -> Path:
    """Tag the rows of ``queries`` and write them, with the vocabulary report, to ``options.out``."""
    options.check()
    started = time.perf_counter()
    rows = read_query_rows(queries)
    existing = [_existing_tags(row) if options.keep_existing else [] for row in rows]
    todo = [i for i, tags in enumerate(existing) if not tags]
    ids = [rows[i]["id"] for i in todo]
    texts = [rows[i]["query"] for i in todo]
    failed: list[str] = []
    new_tags: list[list[str]] = []
    typicality: list[float] | None = None
    if not todo:
        print(f"zooter tag: all {len(rows)} rows already have tags (--keep_existing true): nothing to tag")
    elif options.method == "cluster":
        new_tags, similarity = cluster_tags(texts, options)
        typicality = [0.0] * len(rows)  # kept rows last, then the queries nearest their centroid first
        for index, value in zip(todo, similarity, strict=True):
            typicality[index] = 1.0 + value
    else:
        new_tags, failed = instag_tags(ids, texts, options)
    new_tags, rare = drop_rare(new_tags, options.min_tag_count)

    tagged_rows = [dict(row) for row in rows]
    for row, tags in zip(tagged_rows, existing, strict=True):
        row["tags"] = list(tags)
    for index, tags in zip(todo, new_tags, strict=True):
        tagged_rows[index]["tags"] = tags
    out = write_rows_atomic(tagged_rows, options.out)

    tagged = sum(1 for tags in new_tags if tags)
    kept = len(rows) - len(todo)
    untagged = sum(1 for row in tagged_rows if not row["tags"])
    vocab = vocabulary(tagged_rows, typicality)
    summary = {
        "input": str(queries),
        "out": str(out),
        "options": asdict(options),
        "rows": len(rows),
        "tagged": tagged,
        "kept": kept,
        "untagged": untagged,
        "unparseable": {"count": len(failed), "examples": failed[:5]},
        "removed_rare": {"tags": len(rare), "assignments": sum(rare.values())},
    }
    md_path, json_path = write_report(summary, vocab, out)

    print(f"zooter tag: {len(rows)} rows: {tagged} tagged, {kept} kept their tags, {untagged} without tags")
    if failed:
        print(
            f"zooter tag: {len(failed)} of {len(todo)} tagger answers had no parseable tags; those rows got no new "
            f"tags (e.g. ids {', '.join(failed[:5])})"
        )
    if rare:
        print(
            f"zooter tag: removed {len(rare)} tags given to fewer than {options.min_tag_count} queries "
            f"({sum(rare.values())} assignments)"
        )
    print(f"zooter tag: {len(vocab)} distinct tags; the largest:")
    for entry in vocab[:PRINTED_TAGS]:
        print(f"  {entry['count']:6d} {entry['share']:6.1%}  {entry['tag']}  e.g. {_short(entry['examples'][0], 70)}")
    print(f"zooter tag: wrote {out}, {md_path} and {json_path} ({time.perf_counter() - started:.1f}s)")
    return out


def main(argv: list[str]) -> None:
    """``zooter tag QUERIES --out OUT [--method cluster|instag] [options]``"""
    from zooter.cli_args import PlainParser

    parser = PlainParser(prog="zooter tag", description=__doc__)
    parser.add_argument("queries", help="query rows: .jsonl, .parquet or .csv with unique 'id' and 'query'")
    parser.add_class_arguments(TagOptions, nested_key=None)
    options = parser.parse_args(argv).as_dict()
    options.pop("config", None)
    queries = options.pop("queries")
    try:
        run_tag(queries, TagOptions(**options))
    except ValueError as err:  # TableError included
        sys.exit(f"zooter tag: {err}")
