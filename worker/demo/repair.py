"""Repair the demo's recorded Chinese translations once, reproducibly (run by hand).

The Chinese in newsletter/data/demo_2026-05-29.json was recorded from a
predecessor tool and carries its defects (newsletter/data/README.md lists
them). This script makes it what our own translator produces: our translator
hands TeX math, escapes and URLs through ⟦n⟧ placeholders (worker/translation/placeholders.py)
and gives the model the glossary (worker/translation/data/glossary_zh.tsv), so every
protected span of the English comes back unchanged and field terms follow the
glossary. The repair, per paper and field:

1. math: each numeric TeX math span of the English (`$1.5$`, `$2.2\\times$`,
   `$16.0\\%$`) that the Chinese turned into "1.5美元", "2.2美元\\倍数", "16.0%%"
   or "36.0%美元" is put back from the English;
2. escapes: "64%" becomes "64\\%" where the English wrote `64\\%` (the same
   text once rendered, the same placeholders as the English);
3. fixes: a small explicit table of wrong -> right for broken TeX, glossary
   terms rendered wrongly (代币 for "token", 黑客攻击 for "reward hacking",
   非发行的 for "out-of-distribution") and three passages where the recorded
   translation dropped or garbled a formula or a name.

Afterwards every field must have the English's protected spans and none of the
defect strings, or the script fails without writing. It prints each change
(paper, field, before -> after) and is idempotent: a second run changes nothing.

    python -m worker.demo.repair [newsletter/data/demo_2026-05-29.json]

tests/test_demo.py checks the bundled file against all of this.
"""

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from worker.demo.load import DEMO_PATH
from worker.translation.placeholders import protect

FIELDS = ("title", "abstract")

# Strings no repaired Chinese text may contain.
DEFECTS = ("美元", "黑客攻击", "代币", "非发行的", "%%", "\\p/footnote{", "\\倍数")

SOURCE = (
    "Sample digest of a predecessor tool (keywords 'reinforcement learning', "
    "'diffusion policy'), listing date Fri 2026-05-29: real arXiv metadata; "
    "Chinese texts are the tool's machine translations, repaired by "
    "`python -m worker.demo.repair` (see README.md)."
)

# A TeX math span that is a number, optionally times or percent: `$1.5$`, `$34\times$`.
_NUMERIC_MATH = re.compile(r"\$([+\-]?\d+(?:\.\d+)?)(\\times|\\%)?\$")
# What the predecessor left of such a span after the number: the dollars read as
# US dollars (美元), `\times` translated (\倍数), `\%$` collapsed to "%%" or "%美元".
_MATH_ARTEFACT = r"(?:美元\\倍数|%美元|%%|美元)"
# A TeX-escaped percent after a number in the English prose (not inside math).
_ESCAPED_PERCENT = re.compile(r"(?<![\d.$+\-])(\d+(?:\.\d+)?)\\%")

# Glossary terms the recorded text renders wrongly, and broken TeX: wrong -> right,
# applied everywhere, in this order (longer phrases first).
TERM_FIXES: tuple[tuple[str, str], ...] = (
    ("奖励黑客攻击", "奖励投机"),  # reward hacking (glossary: 奖励投机)
    ("容易被黑客攻击", "容易出现奖励投机"),  # "prone to reward hacking"
    ("奖励黑客", "奖励投机"),
    ("非发行的", "分布外"),  # out-of-distribution (glossary: 分布外)
    ("非分布的", "分布外"),
    ("代币", "词元"),  # token (glossary: 词元)
    ("\\p/footnote{", "\\footnote{"),  # broken TeX
)

# Passages the recorded translation garbled beyond a term: (paper, field, wrong, right).
PASSAGE_FIXES: tuple[tuple[str, str, str, str], ...] = (
    # "token-metered USD per 1,000 evaluations": real dollars, garbled.
    (
        "2605.29601",
        "abstract",
        "(每千次评估计量代币计量美元)",
        "(按词元计费,每千次评估的 USD 成本)",
    ),
    # "in English $\Leftrightarrow$ Chinese, German, and French directions": formula dropped.
    (
        "2605.30274",
        "abstract",
        "龙在英文翻译质量方面实现了显著提升",
        "Loong在英文 $\\Leftrightarrow$ 中文、德文和法文方向上的翻译质量均有显著提升",
    ),
    ("2605.30274", "abstract", "龙氏不被动关注", "Loong不被动关注"),  # a name, translated
    # "we release \textbf{FinGuard-Bench}, to our knowledge the first ...": name dropped.
    (
        "2605.29427",
        "abstract",
        "我们发布了据我们所知的首个",
        "我们发布了 \\textbf{FinGuard-Bench},据我们所知这是首个",
    ),
)


@dataclass(frozen=True)
class Change:
    """One edit of one field, with a little context on each side."""

    arxiv_id: str
    field: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.arxiv_id} {self.field}: {self.before!r} -> {self.after!r}"


def _edit(text: str, start: int, end: int, new: str, where: tuple[str, str]) -> tuple[str, Change]:
    """`text` with [start, end) replaced by `new`, and the change in context."""
    left, right = text[max(0, start - 8) : start], text[end : end + 8]
    change = Change(*where, left + text[start:end] + right, left + new + right)
    return text[:start] + new + text[end:], change


def restore_math(english: str, chinese: str, where: tuple[str, str]) -> tuple[str, list[Change]]:
    """Put back each numeric math span of `english` that `chinese` turned into an artefact."""
    changes: list[Change] = []
    cursor = 0
    for span in _NUMERIC_MATH.finditer(english):
        present = chinese.find(span.group(), cursor)
        artefact = re.compile(r"(?<![\d.])" + re.escape(span.group(1)) + _MATH_ARTEFACT)
        found = artefact.search(chinese, cursor)
        if found and (present == -1 or found.start() < present):
            chinese, change = _edit(chinese, found.start(), found.end(), span.group(), where)
            changes.append(change)
            cursor = found.start() + len(span.group())
        elif present != -1:
            cursor = present + len(span.group())
    return chinese, changes


def restore_escaped_percents(
    english: str, chinese: str, where: tuple[str, str]
) -> tuple[str, list[Change]]:
    """Write "N\\%" where the English has `N\\%` and the Chinese a bare "N%"."""
    changes: list[Change] = []
    wanted = Counter(match.group(1) for match in _ESCAPED_PERCENT.finditer(english))
    for number, count in wanted.items():
        missing = count - chinese.count(number + "\\%")
        bare = re.compile(r"(?<![\d.])" + re.escape(number) + r"%")
        for _ in range(missing):
            found = bare.search(chinese)
            if found is None:
                break
            chinese, change = _edit(chinese, found.start(), found.end(), number + "\\%", where)
            changes.append(change)
    return chinese, changes


def apply_fixes(
    chinese: str, fixes: list[tuple[str, str]], where: tuple[str, str]
) -> tuple[str, list[Change]]:
    """Replace every occurrence of each wrong string by its right one, in order."""
    changes: list[Change] = []
    for wrong, right in fixes:
        while (at := chinese.find(wrong)) != -1:
            chinese, change = _edit(chinese, at, at + len(wrong), right, where)
            changes.append(change)
    return chinese, changes


def repair_field(arxiv_id: str, field: str, english: str, chinese: str) -> tuple[str, list[Change]]:
    """The repaired Chinese of one field and what changed (see module docstring)."""
    where = (arxiv_id, field)
    passages = [(w, r) for i, f, w, r in PASSAGE_FIXES if (i, f) == where]
    changes: list[Change] = []
    chinese, found = apply_fixes(chinese, passages, where)
    changes += found
    chinese, found = restore_math(english, chinese, where)
    changes += found
    chinese, found = restore_escaped_percents(english, chinese, where)
    changes += found
    chinese, found = apply_fixes(chinese, list(TERM_FIXES), where)
    return chinese, changes + found


def problems(english: str, chinese: str) -> list[str]:
    """Why `chinese` is not what our translator would return for `english` (empty: fine)."""
    found = [f"contains {defect!r}" for defect in DEFECTS if defect in chinese]
    ours = Counter(protect(english).originals)
    split = Counter(_split(span, ours) for span in protect(chinese).originals)
    theirs = Counter(piece for pieces, count in split.items() for piece in pieces * count)
    if ours != theirs:
        found.append(f"spans differ: missing {ours - theirs}, extra {theirs - ours}")
    return found


def _split(span: str, known: Counter[str]) -> tuple[str, ...]:
    """`span` as a run of `known` spans if it is one, else itself.

    protect() merges touching spans into one placeholder: where the English has
    `46.1\\% across two tasks\\footnote{`, a right translation may put `\\%` and
    `\\footnote{` side by side, which is one span of the Chinese.
    """
    if span in known or not span:
        return (span,)
    for head in sorted(known, key=len, reverse=True):
        if span.startswith(head):
            rest = _split(span[len(head) :], known)
            if all(piece in known for piece in rest):
                return (head, *rest)
    return (span,)


def repair_demo(demo: dict) -> tuple[dict, list[Change]]:
    """The repaired demo listing and the changes; raises ValueError if any defect is left."""
    changes: list[Change] = []
    papers, failures = [], []
    for record in demo["papers"]:
        zh = dict(record["zh"])
        for field in FIELDS:
            zh[field], found = repair_field(record["arxiv_id"], field, record[field], zh[field])
            changes += found
            failures += [
                f"{record['arxiv_id']} {field}: {problem}"
                for problem in problems(record[field], zh[field])
            ]
        papers.append(record | {"zh": zh})
    if failures:
        raise ValueError("left unrepaired:\n" + "\n".join(failures))
    return demo | {"source": SOURCE, "papers": papers}, changes


def dump(demo: dict) -> str:
    """The JSON text as the file stores it (the extractor's format)."""
    return json.dumps(demo, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEMO_PATH
    before = path.read_text(encoding="utf-8")
    repaired, changes = repair_demo(json.loads(before))
    for change in changes:
        print(change)
    after = dump(repaired)
    if after != before:
        path.write_text(after, encoding="utf-8")
    print(f"{len(changes)} change(s); {path} {'rewritten' if after != before else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
