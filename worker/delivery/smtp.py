"""One SMTP transaction, and its refusals sorted into failures a caller can act on.

Used by worker/delivery/mail.py's `Mailer` (which owns the connection and the
retries) and by the batch sender, which catches the three failures:
`PermanentFailure` (5xx for this message: a hard bounce), `TemporaryFailure`
(still 4xx or unreachable after the retries) and `SetupFailure` (our side is
misconfigured: AUTH, STARTTLS or sender refused; no message can go).
"""

import smtplib

CRLF = b"\r\n"


class DeliveryFailure(smtplib.SMTPException):
    """A message could not be handed over; `reply` says why."""

    def __init__(self, reply: str, code: int | None = None):
        super().__init__(reply)
        self.reply = reply
        self.code = code


class PermanentFailure(DeliveryFailure):
    """A 5xx reply to RCPT or DATA: this recipient or message is refused (a hard bounce)."""


class TemporaryFailure(DeliveryFailure):
    """Still a 4xx reply or no connection after every retry; try again later.

    `connection` is True when the server could not be reached or hung up,
    i.e. the next message would most likely fail too.
    """

    def __init__(self, reply: str, code: int | None = None, *, connection: bool = False):
        super().__init__(reply, code)
        self.connection = connection


class SetupFailure(DeliveryFailure):
    """Our side is refused (AUTH, STARTTLS, HELO, MAIL FROM): no message can go."""


def _reply_text(code: int, message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


def transmit(smtp: smtplib.SMTP, sender: str, recipient: str, raw: bytes) -> None:
    """`smtp.sendmail(sender, [recipient], raw)` for ready CRLF bytes, at less cost per message.

    Raises what sendmail raises, in the same cases (so `classify` sorts it),
    and leaves the session as sendmail does (RSET after a refusal, closed
    after a 421). Two differences, both for the batch sender's ~140 KB
    digests: the dot-stuffing is one bytes.replace (smtplib runs a multiline
    regex over the whole message), and when the server offers PIPELINING
    (RFC 2920) MAIL, RCPT and DATA go out in one write and their three
    replies are read after it: two round trips per message instead of four.
    """
    smtp.ehlo_or_helo_if_needed()
    if not (smtp.does_esmtp and smtp.has_extn("pipelining")):
        _envelope(smtp, sender, recipient, len(raw))
    else:
        size = f" SIZE={len(raw)}" if smtp.has_extn("size") else ""
        if "\r" in sender + recipient or "\n" in sender + recipient:
            raise ValueError("a line break in an SMTP address")
        mail_from = f"MAIL FROM:{smtplib.quoteaddr(sender)}{size}\r\n"
        smtp.send(f"{mail_from}RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n")
        mail, rcpt, data = smtp.getreply(), smtp.getreply(), smtp.getreply()
        if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that took DATA with no recipient: end the empty message.
            smtp.send(b".\r\n")
            smtp.getreply()
        _refused(smtp, mail, rcpt, data, sender, recipient)
    # Dot-stuffing (RFC 5321 4.5.2), then the end-of-data line.
    body = raw.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    smtp.send(body + (b".\r\n" if body.endswith(CRLF) else b"\r\n.\r\n"))
    code, reply = smtp.getreply()
    if code != 250:
        _close_or_reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _envelope(smtp: smtplib.SMTP, sender: str, recipient: str, size: int) -> None:
    """MAIL, RCPT and DATA one round trip each, for a server without PIPELINING."""
    options = [f"size={size}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    mail = smtp.mail(sender, options)
    if mail[0] != 250:
        _refused(smtp, mail, (250, b""), (354, b""), sender, recipient)
    rcpt = smtp.rcpt(recipient)
    if rcpt[0] not in (250, 251):
        _refused(smtp, mail, rcpt, (354, b""), sender, recipient)
    smtp.putcmd("data")
    _refused(smtp, mail, rcpt, smtp.getreply(), sender, recipient)


def _refused(smtp: smtplib.SMTP, mail, rcpt, data, sender: str, recipient: str) -> None:
    """Raise sendmail's exception for the first refused step of the envelope, if any."""
    if mail[0] != 250:
        _close_or_reset(smtp, mail[0])
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt[0] not in (250, 251):
        _close_or_reset(smtp, rcpt[0])
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if data[0] != 354:
        _close_or_reset(smtp, data[0])
        raise smtplib.SMTPDataError(data[0], data[1])


def _close_or_reset(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:
        smtp.close()
    else:
        try:
            smtp.rset()
        except smtplib.SMTPServerDisconnected:
            pass


def classify(error: smtplib.SMTPException) -> DeliveryFailure:
    """Sort an smtplib error into permanent (bounce), temporary or setup failure."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        # One recipient per message, so there is exactly one entry.
        code, reply = next(iter(error.recipients.values()))
        text = _reply_text(code, reply)
        return PermanentFailure(text, code) if code >= 500 else TemporaryFailure(text, code)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"connection lost: {error}", connection=True)
    if isinstance(error, smtplib.SMTPResponseException):
        text = _reply_text(error.smtp_code, error.smtp_error)
        if 400 <= error.smtp_code < 500:
            # 421 means the server is closing the connection.
            return TemporaryFailure(text, error.smtp_code, connection=error.smtp_code == 421)
        if isinstance(error, smtplib.SMTPDataError):
            return PermanentFailure(text, error.smtp_code)
        return SetupFailure(text, error.smtp_code)
    # SMTPNotSupportedError (no STARTTLS/AUTH offered) and the like.
    return SetupFailure(str(error) or type(error).__name__)
