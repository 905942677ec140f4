"""Sphinx configuration of the skw2s documentation (``bash scripts/docs.sh`` builds it).

Environment variables:

- ``SKW2S_DOCS_EXAMPLES``: a regular expression; only gallery examples whose path matches it
  run (the others are rendered as code, with no figures). Default: every ``plot_*.py``. The
  empty string or ``none`` runs none.
- ``SKW2S_DATA_DIR``: the data the examples read; default ``../shared/data`` beside the
  repository when it exists.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if (ROOT / "skw2s").is_dir():  # build against this checkout, installed or not
    sys.path.insert(0, str(ROOT))
if not os.environ.get("SKW2S_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["SKW2S_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")

import skw2s  # noqa: E402

project = "skw2s"
author = "the skw2s developers"
copyright = "the skw2s developers"
release = version = skw2s.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax served from the site itself (_static/mathjax), not a CDN: equations render offline
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
default_role = "literal"
pygments_style = "sphinx"
smartquotes = False  # keep "--data-dir" and quotes in code-like text as typed

# -- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Document members written in skw2s only: scikit-learn's own (``get_params``, the
    metadata-routing ``set_*_request``) are documented by scikit-learn."""
    if what == "class":
        module = getattr(obj, "__module__", None) or ""
        if callable(obj) and not module.startswith("skw2s"):
            return True
    return skip


# -- The config-key table comes from the schema at build time -------------------------------
KEYS_BEGIN, KEYS_END = "<!-- keys:begin -->\n", "<!-- keys:end -->"


def _current_config_keys(app, docname, source):
    """Replace the table of ``config.md`` by :func:`skw2s.experiment.config_keys_markdown`,
    so the site shows the schema of the code it documents even if the file is stale."""
    if docname != "config":
        return
    from skw2s.experiment import config_keys_markdown

    text = source[0]
    if KEYS_BEGIN not in text or KEYS_END not in text:
        raise RuntimeError(f"docs/config.md lost its {KEYS_BEGIN.strip()} / {KEYS_END} markers.")
    head, rest = text.split(KEYS_BEGIN, 1)
    source[0] = head + KEYS_BEGIN + config_keys_markdown() + KEYS_END + rest.split(KEYS_END, 1)[1]


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
    app.connect("source-read", _current_config_keys)


# -- MyST (the Markdown pages: design notes, config keys) -----------------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]

# -- Gallery ---------------------------------------------------------------------------------
_pattern = os.environ.get("SKW2S_DOCS_EXAMPLES")
if _pattern is None:
    _pattern = r"/plot_"
elif _pattern.strip().lower() in ("", "none"):
    _pattern = r"^$"  # matches no path: render every example as code only

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": _pattern,
    "ignore_pattern": r"__init__\.py|/_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "min_reported_time": 0,
    "show_memory": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    # "Examples using X" on each API page
    "backreferences_dir": "generated",
    "doc_module": ("skw2s",),
    "inspect_global_variables": False,
    "thumbnail_size": (480, 320),
}

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skw2s {release}"
html_static_path = ["_static"]
html_css_files = ["skw2s.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": True,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "design": [], "config": []}
html_show_sourcelink = False
html_copy_source = False
