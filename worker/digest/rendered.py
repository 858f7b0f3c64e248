"""A rendered digest email as the sender takes it: subject, and parts as segments.

Made by worker/digest/assembly.py (`assemble_digest`, for `DayDigest.render_email`
of worker/digest/core.py); read by worker/delivery/batch.py and
mime.py (each segment encoded once per process), dispatch and the tests.
"""

from functools import cached_property

from emails import RenderedEmail


class DigestEmail:
    """A rendered digest email; its parts as segments for MIME encoding.

    `"".join(html_segments) == html` (and the same for text). The large
    segments (papers' entries, the HTML around them) are the same str objects
    in every digest of the day that shows them, so an encoder can cache each
    one's encoding by the object; links and numbers are segments of their own.
    """

    def __init__(
        self, subject: str, text_segments: tuple[str, ...], html_segments: tuple[str, ...]
    ):
        self.subject = subject
        self.text_segments = text_segments
        self.html_segments = html_segments

    @cached_property
    def text(self) -> str:
        return "".join(self.text_segments)

    @cached_property
    def html(self) -> str:
        return "".join(self.html_segments)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DigestEmail | RenderedEmail):
            return NotImplemented
        return (self.subject, self.text, self.html) == (other.subject, other.text, other.html)

    __hash__ = None  # type: ignore[assignment]
