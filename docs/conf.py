"""Sphinx configuration for the protloc documentation.

Build (offline; nothing is fetched and no example is executed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Autodoc imports protloc. The editable install already makes it importable; the path
# entry lets a plain source checkout build the docs too.
sys.path.insert(0, str(ROOT / "src"))

import protloc  # noqa: E402

# -- Project ------------------------------------------------------------------------------
project = "protloc"
author = "The protloc developers"
copyright = "2025-2026, The protloc developers"
release = protloc.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions ---------------------------------------------------------------------------
# Only extensions that ship with Sphinx or with the `docs` extra (numpydoc, myst-parser).
# intersphinx is deliberately absent: it fetches inventories over the network, and the
# docs must build offline (`tox -e docs` in a sandbox). Links to numpy/scikit-learn are
# therefore plain text, which is why `nitpicky` stays False.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",  # MathJax is loaded by the reader's browser, not at build time.
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]
nitpicky = False

# -- autodoc / autosummary ----------------------------------------------------------------
autosummary_generate = True
# Stubs are written to docs/api/generated/ (git-ignored) on every build.
autosummary_generate_overwrite = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    # No "inherited-members" and no "show-inheritance": inherited scikit-learn methods
    # (get_params, set_output, ...) carry :ref: links to scikit-learn's own user guide
    # labels, which do not exist here and would warn, and the bases are often private
    # helper classes that mean nothing to a reader.
}
autodoc_member_order = "groupwise"
autodoc_typehints = "none"  # numpydoc sections already give the types.
# Class docstring only; __init__ only stores parameters (scikit-learn convention).
autoclass_content = "class"
# Signatures show defaults as written in the source (``channels=DEFAULT_CHANNELS``).
autodoc_preserve_defaults = True

# -- numpydoc -----------------------------------------------------------------------------
# Methods are listed by the autosummary class template (_templates/autosummary/class.rst),
# so numpydoc must not add a second, stub-less member table (it would warn about missing
# stubs for every method).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
# Types stay plain text: resolving "array-like of shape (n, rows, cols, channels)" into
# cross-references needs intersphinx, which is off (see above).
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True
numpydoc_validation_checks = set()

# -- MyST (Markdown pages: getting started, guide, gallery, benchmarks, results) ----------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# Warnings we understand and accept; everything else fails `sphinx-build -W`.
suppress_warnings = [
    # benchmarks.md and results*.md are appended to by several engineers, one section each;
    # a section that starts at "###" under the page's "#" title is harmless in HTML.
    "myst.header",
]

# -- HTML ---------------------------------------------------------------------------------
html_theme = "alabaster"  # Built into Sphinx: no extra install, nothing fetched.
html_title = f"protloc {release}"
html_static_path = ["_static"]  # custom.css: smaller code font, see the file
html_theme_options = {
    "description": "Protein subcellular localization from HPA fluorescence images",
    "fixed_sidebar": True,
    "page_width": "1240px",
    "sidebar_width": "240px",
    "show_relbars": True,
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"],
}


# -- Docstring hooks ----------------------------------------------------------------------
# scikit-learn generates `set_fit_request`, `set_score_request`, ... on every estimator
# class (metadata routing). They are documented by scikit-learn, and their docstrings link
# to scikit-learn's own glossary and user guide labels, which do not exist here.
_REQUEST_METHOD = re.compile(r"^set_\w+_request$")


def _skip_member(app, what, name, obj, skip, options):
    if _REQUEST_METHOD.match(name):
        return True
    return None


# Fitted attributes end in "_" (scikit-learn convention), and docstrings write them bare,
# e.g. "ndarray of shape (n_features_in_,)" or "see support_". In reStructuredText a word
# ending in "_" is a hyperlink reference, so docutils reports "Unknown target name". The
# hook below, run after numpydoc has rendered the sections, wraps such bare names in
# literal markup; names already in markup, doctest lines and literal blocks are untouched.
_BARE_ATTRIBUTE = re.compile(r"(?<![\w`*.:<|/\\-])([A-Za-z](?:[\w.]*[A-Za-z0-9])?_)(?![\w`*])")
_MARKUP = re.compile(r"(``.*?``|:?[\w:.-]*:?`[^`]*`_{0,2})", re.S)


def _literal_names(text):
    # Markup may span lines, so prose is processed a paragraph chunk at a time.
    parts = _MARKUP.split(text)
    return "".join(
        part if j % 2 else _BARE_ATTRIBUTE.sub(r"``\1``", part) for j, part in enumerate(parts)
    )


def _literal_fitted_attributes(app, what, name, obj, options, lines):
    out, prose, literal_indent = [], [], None

    def flush():
        if prose:
            out.extend(_literal_names("\n".join(prose)).split("\n"))
            prose.clear()

    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                out.append(line)
                continue
            literal_indent = None
        if stripped.startswith((">>>", "...", ".. ")):
            flush()
            out.append(line)
            if stripped.startswith(".. "):  # directive content is left as written
                literal_indent = indent
            continue
        prose.append(line)
        if stripped.rstrip().endswith("::"):
            flush()
            literal_indent = indent
    flush()
    lines[:] = out


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    # numpydoc renders sections at the default priority (500); run after it.
    app.connect("autodoc-process-docstring", _literal_fitted_attributes, priority=900)
