"""The languages of the site and of the emails' chrome: English, and 简体中文.

The one place that decides which interface language a subscriber gets and
where its catalogue is. Flask-free, so the worker and the email renderer
(emails/__init__.py, worker/digest/) use it as the site does
(newsletter/i18n.py). Paper content is not translated here: a digest's
titles and abstracts stay English, or English + translation
(newsletter/languages.py).

A subscriber chooses a digest language (newsletter/languages.py: "en" or
"en+zh"); no separate interface language is stored. English + 简体中文 means
the interface in 简体中文; anything else, English (there is no other catalogue).
The catalogues are newsletter/translations/<locale>/LC_MESSAGES/messages.po,
compiled to the committed messages.mo (tests/test_i18n.py checks it is fresh).
"""

from datetime import date
from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

ENGLISH = "en"
SIMPLIFIED_CHINESE = "zh_Hans"
# Locale -> the name the language switch shows, in that language.
LOCALES = {ENGLISH: "English", SIMPLIFIED_CHINESE: "简体中文"}
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# Chinese that is not Simplified: no catalogue of its own, and English is no closer.
_TRADITIONAL = ("hant", "tw", "hk", "mo")


def html_lang(locale: str) -> str:
    """The BCP 47 tag of `locale` for <html lang>: "en", "zh-Hans"."""
    return locale.replace("_", "-")


def language_locale(tag: str) -> str | None:
    """The locale a BCP 47 tag (Accept-Language, ?lang=) asks for, or None if none fits.

    Any Chinese maps to 简体中文 (a reader of Traditional Chinese reads it
    better than English); "zh_Hans" as the switch writes it is accepted too.
    """
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    if primary == "zh":
        return SIMPLIFIED_CHINESE
    if primary == "en":
        return ENGLISH
    return None


def subscriber_locale(language: str) -> str:
    """The interface locale of a subscriber's digest language ("en", "en+zh", ...)."""
    english, plus, target = language.partition("+")
    if plus and english == ENGLISH:
        parts = target.lower().replace("_", "-").split("-")
        if parts[0] == "zh" and not set(parts[1:]) & set(_TRADITIONAL):
            return SIMPLIFIED_CHINESE
    return ENGLISH


_WEEKDAYS_ZH = "一二三四五六日"


def short_day(locale: str, day: date) -> str:
    """A day without its year: "Fri 29 May", "5月29日 周五"."""
    if locale == SIMPLIFIED_CHINESE:
        return f"{day.month}月{day.day}日 周{_WEEKDAYS_ZH[day.weekday()]}"
    return f"{day:%a} {day.day} {day:%b}"


def long_day(locale: str, day: date) -> str:
    """A day with its year: "Fri 29 May 2026", "2026年5月29日 周五"."""
    if locale == SIMPLIFIED_CHINESE:
        return f"{day.year}年{short_day(locale, day)}"
    return f"{short_day(locale, day)} {day:%Y}"


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of `locale`; English is the source text itself."""
    if locale == ENGLISH or locale not in LOCALES:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [locale])


def N_(message: str) -> str:
    """Mark `message` for the catalogue where it is defined; it is translated where shown."""
    return message


# Named apart from gettext and ngettext, whose first argument is the message: the
# catalogue's extraction takes these with the keywords lgettext:2 and lngettext:2,3 (babel.cfg).
def lgettext(locale: str, message: str, **variables: object) -> str:
    """`message` in `locale`, with %(name)s filled in (as Flask-Babel's gettext)."""
    text = translations(locale).ugettext(message)
    return text % variables if variables else text


def lngettext(locale: str, singular: str, plural: str, num: int, **variables: object) -> str:
    """The form of `singular`/`plural` for `num` in `locale`; %(num)s is `num`."""
    text = translations(locale).ungettext(singular, plural, num)
    return text % {"num": num, **variables}
