"""What the model is asked and whether its answer will do (pure).

Used by the openai backend (worker/translation/openai_backend.py): it protects each title and
abstract (worker/translation/placeholders.py), sends `build_messages`, reads the reply with
`parse_completion` and `parse_answer`, and keeps a paper only if `check_entry`
accepts its title and abstract; a TranslationError's message is what the
paper's row says instead. This module owns the Target (language, its name,
its glossary), the prompt and the glossary terms each batch is given, and the
rules an answer must pass: JSON as asked, every placeholder back exactly once,
no fences or commentary, one-line titles, mostly the target script, a sane
abstract length. No network, no database.

An answer in a language of SCRIPTS must be mostly in that script and an
abstract's length must fit LENGTH_RATIOS; a language missing there is checked
for placeholders and commentary only.
"""

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from worker.translation.placeholders import PLACEHOLDER, PlaceholderError, Protected, restore

# Characters an answer in the language must mostly consist of.
SCRIPTS = {
    "zh": r"[\u3400-\u4dbf\u4e00-\u9fff]",
    "zh-tw": r"[\u3400-\u4dbf\u4e00-\u9fff]",
    "ja": r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]",
    "ko": r"[\uac00-\ud7af]",
    "ru": r"[\u0400-\u04ff]",
    "uk": r"[\u0400-\u04ff]",
}
# Answer length / source length (both with placeholders) of a sane abstract.
# Chinese runs at 0.25-0.36 of the English on the sample digest.
LENGTH_RATIOS = {"zh": (0.1, 1.0), "zh-tw": (0.1, 1.0), "ja": (0.15, 1.3), "ko": (0.15, 1.3)}
DEFAULT_LENGTH_RATIO = (0.4, 3.0)
# An abstract shorter than this says little about a ratio.
MIN_CHARS_FOR_RATIO = 200

# A line that talks about the translation instead of being one. ("这是..." alone
# is a normal sentence start: "This is the first ..." → "这是首个 ...".)
_COMMENTARY = re.compile(
    r"^\s*(?:here(?: is|'s)|sure\b|certainly\b|translation\s*[:：]|translated\s*[:：]|"
    r"(?:以下|下面)是[^。\n]{0,12}(?:翻译|译文)|翻译[:：]|译文[:：]|note\s*[:：]|\(note|注[:：])",
    re.IGNORECASE | re.MULTILINE,
)
_THINKING = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FENCED = re.compile(r"^```[A-Za-z]*\s*(.*?)\s*```$", re.DOTALL)
_ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")


class TranslationError(ValueError):
    """An answer is unusable for one paper; the message is stored on its row."""


@dataclass(frozen=True)
class Target:
    """The language to translate into and the field terms to use."""

    language: str
    name: str
    glossary: dict[str, str]


def relevant_terms(glossary: dict[str, str], texts: Iterable[str]) -> dict[str, str]:
    """The glossary entries whose English term occurs in `texts` (whole words, plurals too)."""
    pattern, by_lower = _glossary_pattern(tuple(glossary))
    if pattern is None:
        return {}
    found = (by_lower[m.group(1).lower()] for m in pattern.finditer("\n".join(texts)))
    return {term: glossary[term] for term in sorted(set(found), key=list(glossary).index)}


@lru_cache(maxsize=8)
def _glossary_pattern(terms: tuple[str, ...]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    # One pass for all terms; longest first, so "offline reinforcement learning"
    # wins over the "reinforcement learning" inside it.
    if not terms:
        return None, {}
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])({alternatives})(?:s|es)?(?![\w-])", re.IGNORECASE)
    return pattern, {t.lower(): t for t in terms}


def build_messages(
    items: Sequence[tuple[str, Protected, Protected]], target: Target
) -> list[dict[str, str]]:
    """The chat messages asking for `items` (key, protected title, protected abstract)."""
    rules = [
        "You translate the titles and abstracts of scientific papers from English into "
        f"{target.name}.",
        "Translate faithfully and completely, in the register of a scientific abstract.",
        "Tokens such as ⟦0⟧ stand for formulas, links and identifiers: copy every one exactly "
        "once, unchanged, where it belongs in the sentence; never add, drop or alter one.",
        "Keep names of methods, models, datasets, software and people as they are.",
    ]
    answer = (
        'Answer with JSON only, no Markdown and no commentary: {"translations": '
        '[{"id": ..., "title": ..., "abstract": ...}]}, one entry per paper, same ids.'
    )
    return paper_messages(rules, answer, items, target)


def paper_messages(
    rules: list[str],
    answer: str,
    items: Sequence[tuple[str, Protected, Protected]],
    target: Target,
) -> list[dict[str, str]]:
    """The system message (`rules`, the glossary's terms these papers use, `answer`) and the papers.

    Also the TL;DR prompt's (worker/translation/tldr_prompt.py).
    """
    terms = relevant_terms(target.glossary, (t.text + "\n" + a.text for _, t, a in items))
    if terms:
        hints = "\n".join(f"- {english} → {rendering}" for english, rendering in terms.items())
        rules = [*rules, "Use these renderings of field terms:\n" + hints]
    papers = [{"id": key, "title": t.text, "abstract": a.text} for key, t, a in items]
    return [
        {"role": "system", "content": "\n".join([*rules, answer])},
        {"role": "user", "content": json.dumps({"papers": papers}, ensure_ascii=False)},
    ]


def parse_completion(data: Any, messages: list[dict[str, str]]) -> tuple[str, int]:
    """A decoded Chat Completions reply's text and tokens; no text if it has none."""
    try:
        content = data["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError
    except (KeyError, IndexError, TypeError):
        # Read as a malformed answer for every paper asked, which asks again.
        return "", _estimated_tokens(messages, "")
    usage = data.get("usage") or {}
    tokens = usage.get("total_tokens")
    if isinstance(tokens, int):
        return content, tokens
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return content, prompt + completion
    return content, _estimated_tokens(messages, content)


def _estimated_tokens(messages: list[dict[str, str]], content: str) -> int:
    # A server that reports no usage still spends the budget: ~3 characters a token.
    return (len(json.dumps(messages, ensure_ascii=False)) + len(content)) // 3


def parse_answer(content: str, key: str = "translations") -> dict[str, dict[str, Any]]:
    """The entries of a model's answer (its `key` list), by id; ValueError if it is not the JSON asked for."""
    text = _THINKING.sub("", content).strip()
    fenced = _FENCED.match(text)
    if fenced:  # the envelope in a fence is harmless; fences inside a text are not
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"answer is not JSON ({exc.msg} at {exc.pos})") from None
    if isinstance(data, dict):
        data = data.get(key)
    if not isinstance(data, list):
        raise ValueError(f'answer has no "{key}" list')
    answers = {}
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            answers[item["id"]] = item
    return answers


def check_entry(
    entry: dict[str, Any] | None, title: Protected, abstract: Protected, target: Target
) -> tuple[str, str]:
    """The paper's title and abstract from its `entry` in the answer, both checked."""
    if entry is None:
        raise TranslationError("missing from the answer")
    return (
        check_translation(title, entry.get("title"), target, "title"),
        check_translation(abstract, entry.get("abstract"), target, "abstract"),
    )


def check_translation(source: Protected, answer: object, target: Target, field: str) -> str:
    """`answer` with its placeholders restored; TranslationError unless it is a sane translation."""
    if not isinstance(answer, str) or not answer.strip():
        raise TranslationError(f"{field}: empty")
    text = answer.strip()
    if "```" in text:
        raise TranslationError(f"{field}: contains a Markdown fence")
    if _COMMENTARY.search(text):
        raise TranslationError(f"{field}: contains commentary")
    if field == "title" and "\n" in text:
        raise TranslationError("title: more than one line")
    try:
        restored = restore(text, source)
    except PlaceholderError as exc:
        raise TranslationError(f"{field}: {exc}") from None
    script = SCRIPTS.get(target.language)
    # A source of fewer than two English words (a bare name such as "FedQHD")
    # may rightly come back unchanged, so it is not held to the script.
    words = len(_ENGLISH_WORD.findall(PLACEHOLDER.sub(" ", source.text)))
    if script and words >= 2:
        prose = PLACEHOLDER.sub("", text)
        in_script = len(re.findall(script, prose))
        letters = sum(1 for c in prose if c.isalpha())
        needed = 1 if field == "title" else max(1, int(0.3 * letters))
        if in_script < needed:
            raise TranslationError(f"{field}: not in {target.name}")
    if field == "abstract" and len(source.text) >= MIN_CHARS_FOR_RATIO:
        low, high = LENGTH_RATIOS.get(target.language, DEFAULT_LENGTH_RATIO)
        ratio = len(text) / len(source.text)
        if not low <= ratio <= high:
            raise TranslationError(f"abstract: length ratio {ratio:.2f} outside {low}-{high}")
    return restored
