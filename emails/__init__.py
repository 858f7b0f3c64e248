"""The email renderer: (template name, plain values) in, (subject, text, html) out.

One email is one folder under templates/ holding subject.txt, body.txt and
body.mjml. The MJML is compiled to HTML once per template (the Jinja tags
pass through MJML untouched), then Jinja fills it per message with
autoescaping on. No Flask, no SMTP, no database here.

An email assembled from pieces (the digest: worker/digest/fragments.py) also
keeps macros in its folder (parts.html, parts.txt, plain Jinja: no MJML),
reached with `macros`, and renders single templates with `render_template`.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
from mjml import mjml2html

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _text_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _html_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_compiled_mjml),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _compiled_mjml(name: str) -> str:
    """HTML compiled from templates/<name> if an .mjml file (Jinja tags intact), else as is."""
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    return mjml2html(source) if name.endswith(".mjml") else source


def _env(name: str) -> jinja2.Environment:
    return _text_env() if name.endswith(".txt") else _html_env()


def render(template: str, **values) -> RenderedEmail:
    """Render templates/<template>/{subject.txt, body.txt, body.mjml} with `values`."""
    subject = _text_env().get_template(f"{template}/subject.txt").render(**values)
    text = _text_env().get_template(f"{template}/body.txt").render(**values)
    html = _html_env().get_template(f"{template}/body.mjml").render(**values)
    # A subject is one line whatever the values held (header injection guard).
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)


def render_template(name: str, **values) -> str:
    """Render one template, e.g. "digest/body.txt"; .mjml and .html are autoescaped."""
    return _env(name).get_template(name).render(**values)


def macros(name: str, **values):
    """The macros of templates/<name> as a module, with `values` as its globals."""
    return _env(name).get_template(name).make_module(vars=values)
