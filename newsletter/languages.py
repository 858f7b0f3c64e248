"""The languages a digest can be in: English, or English plus TRANSLATION_LANGUAGE.

The one place that decides what "bilingual" means. The sign-up and manage
forms offer `language_choices`, the translation job picks its subscribers with
`bilingual_code`, and the digest asks `is_bilingual` and labels the second
language with `TargetLanguage`. Pure: settings are passed in.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetLanguage:
    code: str  # BCP 47, as in TRANSLATION_LANGUAGE and the HTML lang attribute
    english_name: str  # told to the model ("translate into Simplified Chinese")
    short_name: str  # in the digest ("Chinese translation not available today.")
    native_name: str  # on the form ("English + 简体中文")


_KNOWN = {
    language.code: language
    for language in (
        TargetLanguage("zh", "Simplified Chinese", "Chinese", "简体中文"),
        TargetLanguage("zh-tw", "Traditional Chinese", "Chinese", "繁體中文"),
        TargetLanguage("ja", "Japanese", "Japanese", "日本語"),
        TargetLanguage("ko", "Korean", "Korean", "한국어"),
        TargetLanguage("fr", "French", "French", "Français"),
        TargetLanguage("de", "German", "German", "Deutsch"),
        TargetLanguage("es", "Spanish", "Spanish", "Español"),
        TargetLanguage("pt", "Portuguese", "Portuguese", "Português"),
        TargetLanguage("it", "Italian", "Italian", "Italiano"),
        TargetLanguage("ru", "Russian", "Russian", "Русский"),
        TargetLanguage("uk", "Ukrainian", "Ukrainian", "Українська"),
        TargetLanguage("vi", "Vietnamese", "Vietnamese", "Tiếng Việt"),
    )
}


def target_language(code: str, english_name: str | None = None) -> TargetLanguage:
    """TRANSLATION_LANGUAGE described; `english_name` is TRANSLATION_LANGUAGE_NAME, if set."""
    known = _KNOWN.get(code) or TargetLanguage(code, code, code, code)
    if english_name:
        return TargetLanguage(code, english_name, english_name, known.native_name)
    return known


def bilingual_code(target: str) -> str:
    """The subscriber language value of English + `target`, e.g. "en+zh"."""
    return f"en+{target}"


def is_bilingual(language: str, target: str) -> bool:
    """Whether a subscriber's digest language is English + the deployment's target."""
    return language == bilingual_code(target)


def language_choices(target: str, translation_enabled: bool) -> dict[str, str]:
    """Subscriber language value -> label, as the forms offer them."""
    choices = {"en": "English"}
    if translation_enabled:
        choices[bilingual_code(target)] = f"English + {target_language(target).native_name}"
    return choices
