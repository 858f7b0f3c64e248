"""The email renderer: (template name, plain values) in, (subject, text, html) out.

One email is one folder under templates/ holding subject.txt, body.txt and
body.mjml. The MJML is compiled to HTML once per template (the Jinja tags
pass through MJML untouched), then Jinja fills it per message with
autoescaping on. No Flask, no SMTP, no database here.

An email assembled from pieces (the digest: worker/digest/fragments.py) also
keeps macros in its folder (parts.html, parts.txt, plain Jinja: no MJML),
reached with `macros`, and renders single templates with `render_template`.

Every function takes the `locale` of the email's chrome (newsletter/locales.py:
"en", "zh_Hans"): templates write their words as `{{ _('...') }}` and get them
from that locale's catalogue, as the site's templates do (Jinja's i18n
extension, new style: %(name)s holes, values escaped). One environment per
locale, so MJML is still compiled once per template and locale.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
from mjml import mjml2html

from newsletter.locales import ENGLISH, html_lang, translations

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _text_env(locale: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    return env


@cache
def _html_env(locale: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_compiled_mjml),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]  # added by the i18n extension
    return env


def _compiled_mjml(name: str) -> str:
    """HTML compiled from templates/<name> if an .mjml file (Jinja tags intact), else as is."""
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    return mjml2html(source) if name.endswith(".mjml") else source


def _env(name: str, locale: str) -> jinja2.Environment:
    return _text_env(locale) if name.endswith(".txt") else _html_env(locale)


def render(template: str, locale: str = ENGLISH, **values) -> RenderedEmail:
    """Render templates/<template>/{subject.txt, body.txt, body.mjml} with `values`."""
    values["html_lang"] = html_lang(locale)
    subject = _text_env(locale).get_template(f"{template}/subject.txt").render(**values)
    text = _text_env(locale).get_template(f"{template}/body.txt").render(**values)
    html = _html_env(locale).get_template(f"{template}/body.mjml").render(**values)
    # A subject is one line whatever the values held (header injection guard).
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)


def render_template(name: str, locale: str = ENGLISH, **values) -> str:
    """Render one template, e.g. "digest/body.txt"; .mjml and .html are autoescaped."""
    values["html_lang"] = html_lang(locale)
    return _env(name, locale).get_template(name).render(**values)


def macros(name: str, locale: str = ENGLISH, **values):
    """The macros of templates/<name> as a module, with `values` as its globals."""
    return _env(name, locale).get_template(name).make_module(vars=values)
