"""The page's HTML: the Jinja2 template (autoescaped, shipped in the package) and the QR code.

Every value from the database reaches the HTML through autoescaping; the one
piece of markup passed as is, the QR code's SVG, is made here by ``segno``
from the webcal URL. The page has no inline script or style (its
Content-Security-Policy allows neither): the stylesheet and the script are
static files (``assets``), linked by their content-hashed names.
"""

from __future__ import annotations

import io

import segno
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from calendar_svc.page.assets import Assets
from calendar_svc.page.view import PageView

# Error correction M (15 %): a phone camera reads it off a screen or paper.
_QR_ERROR = "m"


def qr_svg(text: str, label: str) -> Markup:
    """An SVG QR code of ``text``, sized by the stylesheet, named ``label`` for screen readers."""
    code = segno.make(text, error=_QR_ERROR, micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        omitsize=True,
        border=4,
        dark="#000",
        light="#fff",
        svgclass="qr-code",
        lineclass=None,
    )
    svg = out.getvalue().decode("ascii")
    attributes = f'role="img" aria-label="{escape(label)}" '
    # Markup as is: the SVG is segno's, from a URL it encodes; the label is escaped.
    return Markup(svg.replace("<svg ", f"<svg {attributes}", 1))


class PageRenderer:
    """Renders ``PageView`` values to HTML bytes (thread-safe: Jinja2 templates are)."""

    def __init__(self, assets: Assets, base_path: str):
        self.assets = assets
        self.base_path = base_path
        self.env = Environment(
            loader=PackageLoader("calendar_svc.page", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.globals["asset"] = self.asset_href
        self.template = self.env.get_template("page.html")

    def asset_href(self, name: str) -> str:
        """The served path of static file ``name`` (``/static/page.3f2a1b4c5d6e.css``)."""
        return f"{self.base_path}/static/{self.assets.served_name(name)}"

    def render(self, view: PageView) -> bytes:
        qr = qr_svg(
            view.subscribe.webcal,
            f"QR code of the subscription address {view.subscribe.webcal}",
        )
        return self.template.render(view=view, qr=qr).encode("utf-8")
