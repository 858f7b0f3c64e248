"""Atom 1.0 (RFC 4287) as text: the personal feed's markup (pure).

newsletter/feed.py decides what the feed holds; feed_cache.py caches each paper's
rendered entry head (all but its categories, which are the reader's own);
this module only writes the markup. Titles and abstracts are shown as the
digest's plain-text part shows them (worker/digest/entries.py `readable`: TeX
as Unicode), as `type="text"`. A reader who ticked TL;DR gets the paper's
English TL;DR (worker/translation/tldr.py) as the summary's first line.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from newsletter.models import Paper
from worker.digest.entries import readable

ATOM = "http://www.w3.org/2005/Atom"
# The date in the tag: URIs of entries and feeds (RFC 4151); never change it.
TAG_DATE = "2026"
# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class FeedHead:
    """The feed's own elements."""

    title: str
    subtitle: str
    feed_id: str
    updated: datetime
    self_url: str
    home_url: str


def tag_host(base_url: str) -> str:
    """The authority of our tag: URIs: BASE_URL's host name."""
    return urlsplit(base_url).hostname or "localhost"


def tag(host: str, specific: str) -> str:
    """A tag: URI (RFC 4151) minted under `host`."""
    return f"tag:{host},{TAG_DATE}:{specific}"


def _text(text: str) -> str:
    return escape(_NOT_XML.sub("", text))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("", value))


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_entry_head(paper: Paper, host: str, updated: datetime, tldr: str | None = None) -> str:
    """A paper's <entry> up to its categories; its id names the version, so a new one is new."""
    summary = readable(paper.abstract)
    if tldr:
        summary = f"TL;DR: {readable(tldr)}\n\n{summary}"
    abs_url = f"https://arxiv.org/abs/{paper.arxiv_id}"
    pdf_url = f"https://arxiv.org/pdf/{paper.arxiv_id}"
    return "".join(
        [
            "<entry>",
            f"<id>{_text(tag(host, f'arxiv:{paper.arxiv_id}v{paper.version}'))}</id>",
            f'<title type="text">{_text(readable(paper.title))}</title>',
            f"<updated>{_stamp(updated)}</updated>",
            f'<link rel="alternate" type="text/html" href={_attr(abs_url)}/>',
            f'<link rel="related" type="application/pdf" title="PDF" href={_attr(pdf_url)}/>',
            *(f"<author><name>{_text(name)}</name></author>" for name in paper.authors),
            f'<summary type="text">{_text(summary)}</summary>',
        ]
    )


def render_feed(head: FeedHead, entries: Iterable[tuple[str, Iterable[str]]]) -> bytes:
    """The document: `entries` are (entry head, category terms) in order."""
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n',
        f'<feed xmlns="{ATOM}">',
        f'<title type="text">{_text(head.title)}</title>',
        f'<subtitle type="text">{_text(head.subtitle)}</subtitle>',
        f"<id>{_text(head.feed_id)}</id>",
        f"<updated>{_stamp(head.updated)}</updated>",
        f'<link rel="self" type="application/atom+xml" href={_attr(head.self_url)}/>',
        f'<link rel="alternate" type="text/html" href={_attr(head.home_url)}/>',
        # Required of a feed whose entries may have none (a paper without authors).
        "<author><name>arXiv digest</name></author>",
        "<generator>arXiv digest newsletter</generator>",
    ]
    for entry_head, terms in entries:
        out.append(entry_head)
        out.extend(f"<category term={_attr(term)}/>" for term in terms)
        out.append("</entry>")
    out.append("</feed>")
    return "".join(out).encode()
