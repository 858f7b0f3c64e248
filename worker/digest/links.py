"""arXiv's "this https URL" in abstracts and comments, pointed at the paper's abstract page.

Used by worker/digest/marks.py (the abstract's HTML, with the highlighting's
offsets) and by the entry macros (emails/templates/digest/parts.*, as
`linked`, via worker/digest/fragments.py), once per paper a day. arXiv's listings
replace a link in an abstract or comment by the words "this https URL"; the
real link is on the paper's abstract page, so that is where these words
lead. Translations carry the same words ("此 https URL", "这个 https 网址").
"""

import re

from markupsafe import Markup, escape

# "this https URL" as arXiv writes it, and as translators rendered it.
_ARXIV_LINK = re.compile(
    r"(?:\b[Tt]his |此\s?|这个\s?|该\s?|這個\s?|該\s?)?\bhttps? (?:URL|网址|網址|链接|連結)"
)


def link_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` says "this https URL" (start, end), in order."""
    if "http" not in text:
        return []
    return [m.span() for m in _ARXIV_LINK.finditer(text)]


def open_tag(url: str) -> str:
    """The link's opening tag."""
    return f'<a href="{escape(url)}" style="color:#0969da">'


CLOSE_TAG = "</a>"


def linked_text(text: str, url: str) -> str:
    """For the text part: the words followed by the URL in angle brackets."""
    spans = link_spans(text)
    if not spans:
        return text
    out: list[str] = []
    position = 0
    for _, end in spans:
        out += (text[position:end], f" <{url}>")
        position = end
    out.append(text[position:])
    return "".join(out)


def linked_html(text: str, url: str) -> Markup:
    """For HTML: `text` escaped, the words a link to `url`."""
    spans = link_spans(text)
    if not spans:
        return escape(text)
    out: list[str] = []
    position = 0
    for start, end in spans:
        out += (str(escape(text[position:start])), open_tag(url))
        out += (str(escape(text[start:end])), CLOSE_TAG)
        position = end
    out.append(str(escape(text[position:])))
    return Markup("".join(out))
