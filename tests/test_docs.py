"""The documentation site: it builds with warnings as errors, has a page for every public object,
its config-key table comes from the schema, its user-guide outputs are what the code prints, and
its pages render in headless Chromium with every image loaded.

The build runs on a copy of ``docs/``, ``examples/`` and the benchmark pages in a temporary
directory, with one small gallery example (``EXAMPLE``) executed and the others rendered as code
only (``SKW2S_DOCS_EXAMPLES``, read by ``docs/conf.py``), so it takes well under two minutes on
two CPU cores. ``bash scripts/docs.sh`` builds the whole site with every example.
"""

from __future__ import annotations

import doctest
import html
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "plot_difficulty"
"""The gallery example the test build runs: the cheapest (one 6-layer model, 300 texts)."""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
DOCS_PACKAGES = ("sphinx", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme", "myst_parser",
                 "sphinx-mathjax-offline")


def _missing_docs_packages():
    return [name for name in DOCS_PACKAGES if importlib.util.find_spec(name) is None]


def _data_dir():
    value = os.environ.get("SKW2S_DATA_DIR")
    if value:
        return Path(value) if Path(value).is_dir() else None
    beside = ROOT.parent / "shared" / "data"
    return beside if beside.is_dir() else None


def _why_the_example_cannot_run():
    """None when the gallery example can run here, else the reason."""
    data = _data_dir()
    if data is None or not (data / "sciq").is_dir():
        return "no SciQ data (set SKW2S_DATA_DIR to the folder holding sciq/)"
    from skw2s.hf.models import check_model_spec

    try:
        check_model_spec("smollm2-135m")
    except (ImportError, ValueError) as exc:
        return f"the offline model smollm2-135m is not installed ({exc})"
    return None


def _copy_sources(dest):
    skip = shutil.ignore_patterns("_build", "generated", "auto_examples", "sg_execution_times.rst",
                                  "__pycache__")
    shutil.copytree(ROOT / "docs", dest / "docs", ignore=skip)
    shutil.copytree(ROOT / "examples", dest / "examples", ignore=skip)
    (dest / "benchmarks").mkdir()
    for page in (ROOT / "benchmarks").glob("*.md"):
        shutil.copy(page, dest / "benchmarks" / page.name)


def _drop_one_config_row(config_md):
    """Make the copy's config table stale (its first key row removed): the build must restore it."""
    text = config_md.read_text()
    begin = text.index("<!-- keys:begin -->\n") + len("<!-- keys:begin -->\n")
    lines = text[begin:].split("\n")
    assert lines[2].startswith("| `name` |"), lines[:3]
    config_md.write_text(text[:begin] + "\n".join(lines[:2] + lines[3:]))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    missing = _missing_docs_packages()
    if missing:
        pytest.skip(f"the docs packages {missing} are not installed: pip install -e '.[docs]'")
    src = tmp_path_factory.mktemp("docs-src")
    _copy_sources(src)
    _drop_one_config_row(src / "docs" / "config.md")
    reason = _why_the_example_cannot_run()
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               SKW2S_DOCS_EXAMPLES="none" if reason else rf"/{EXAMPLE}\.py$",
               MPLBACKEND="agg")
    if _data_dir() is not None:
        env["SKW2S_DATA_DIR"] = str(_data_dir())
    out = src / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           str(src / "docs"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return {"out": out, "proc": proc, "example_skipped": reason}


def test_site_builds_with_warnings_as_errors(site):
    proc = site["proc"]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    out = site["out"]
    for page in ("index", "api", "config", "design", "user_guide/index", "user_guide/boosting",
                 "user_guide/cli", "auto_examples/index", f"auto_examples/{EXAMPLE}"):
        assert (out / f"{page}.html").is_file(), page


def _public_objects():
    import skw2s

    from test_docstrings import MODULES

    names = [f"skw2s.{n}" for n in skw2s.__all__ if not n.startswith("_")]
    seen = {id(getattr(skw2s, n)) for n in skw2s.__all__}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{n}" for n in module.__all__
                  if callable(getattr(module, n)) and id(getattr(module, n)) not in seen]
    return names  # pgr_score is documented once, as skw2s.pgr_score


def test_every_public_class_and_function_has_an_api_page(site):
    assert site["proc"].returncode == 0
    missing = [name for name in _public_objects()
               if not (site["out"] / "generated" / f"{name}.html").is_file()]
    assert not missing, f"no API page for {missing}: add them to a page of docs/api/"


def test_the_api_sidebar_is_grouped(site):
    """The API reference's sidebar lists its groups (docs/api/*.rst), each holding its pages,
    not one flat list of every class and function."""
    assert site["proc"].returncode == 0
    html = (site["out"] / "api.html").read_text()
    nav = html[html.index('<ul class="nav bd-sidenav">'):]
    nav = nav[:nav.index("</div>")]  # the section navigation: nested lists, no div
    groups = re.findall(r'<li class="toctree-l1 has-children"><a class="reference internal" '
                        r'href="api/([a-z-]+)\.html"', nav)
    pages = sorted(p.stem for p in (ROOT / "docs" / "api").glob("*.rst"))
    assert sorted(groups) == pages and 5 <= len(groups) <= 15
    members = re.findall(r'<li class="toctree-l2"><a class="reference internal" '
                         r'href="generated/([^"]+)\.html"', nav)
    generated = sorted(p.stem for p in (site["out"] / "generated").glob("*.html"))
    assert sorted(members) == generated  # every API page sits under one group


def test_the_config_page_is_generated_from_the_schema(site):
    from skw2s.experiment import CONFIG_KEYS

    assert site["proc"].returncode == 0
    page = (site["out"] / "config.html").read_text()
    # the copy's table lacked the `name` row: the build put it back from CONFIG_KEYS
    for key in CONFIG_KEYS:
        assert re.search(rf"<code[^>]*><span class=\"pre\">{re.escape(key.name)}</span></code>",
                         page), key.name
    assert "Label of the run in tables and plots." in page


def test_the_gallery_page_shows_its_figure_and_run_time(site):
    if site["example_skipped"]:
        pytest.skip(f"the gallery example did not run: {site['example_skipped']}")
    assert site["proc"].returncode == 0
    page = (site["out"] / "auto_examples" / f"{EXAMPLE}.html").read_text()
    assert f"sphx_glr_{EXAMPLE}_001.png" in page
    assert re.search(r"Total running time of the script:</strong> \(\d+ minutes \d+\.\d+ seconds\)",
                     page)


@pytest.mark.parametrize("page", sorted((ROOT / "docs" / "user_guide").glob("*.rst")),
                         ids=lambda p: p.name)
def test_user_guide_outputs_come_from_the_code(page):
    """Every ``>>>`` block of the user guide runs, and prints what the page shows."""
    result = doctest.testfile(str(page), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {page}"


IMAGE_CHECK = """
<script>
window.addEventListener("load", function () {
  var found = Array.prototype.slice.call(document.images).map(function (img) {
    return {src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth};
  });
  var out = document.createElement("div");  // not a <pre>: the theme's script edits those
  out.id = "skw2s-image-check";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>
"""


def images_of(page, user_data_dir):
    """Load ``page`` in headless Chromium and return its images: ``src``, ``width``
    (``naturalWidth``, 0 when it did not load) and ``complete``, read after the load event."""
    probe = page.with_name(page.stem + ".image-check.html")
    probe.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
           "--window-size=1280,20000", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    match = re.search(r'<div id="skw2s-image-check"[^>]*>(.*?)</div>', proc.stdout, re.S)
    assert match, (f"chromium printed no result for {page} (rc {proc.returncode}): "
                   f"{proc.stderr[-2000:]}")
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_index_and_gallery_page_render_with_every_image_loaded(site, tmp_path):
    assert site["proc"].returncode == 0
    pages = [site["out"] / "index.html"]
    if not site["example_skipped"]:
        pages.append(site["out"] / "auto_examples" / f"{EXAMPLE}.html")
    for page in pages:
        images = images_of(page, tmp_path / "chromium")
        assert images, f"{page.name} shows no image"
        broken = [img["src"] for img in images if not img["width"] > 0]
        assert not broken, f"images that did not load on {page.name}: {broken}"
    if site["example_skipped"]:
        pytest.skip(f"only the index was checked: {site['example_skipped']}")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_equations_render_with_no_network(site, tmp_path):
    """The PGR equation of the setup page is typeset by the MathJax copy inside the site: with
    every connection refused, no raw TeX delimiter is left in the page."""
    assert site["proc"].returncode == 0
    assert (site["out"] / "_static" / "mathjax" / "tex-chtml.js").is_file()
    page = site["out"] / "user_guide" / "setup.html"
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           "--virtual-time-budget=15000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "PGR" in dom and "<mjx-container" in dom, dom[-2000:]
    body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    assert "\\(" not in text and "\\[" not in text and "\\frac" not in text


def test_the_alias_table_names_every_offline_model_and_its_packages():
    from skw2s.hf.offline import OFFLINE_ALIASES

    page = (ROOT / "docs" / "user_guide" / "own_data.rst").read_text()
    table = page.split("The offline aliases")[1].split("The experts of one")[0]
    for alias, info in OFFLINE_ALIASES.items():
        row = table.split(f'``"{alias}"``')[1].split("   * - ")[0]
        assert info.description.split(" (")[0] in row, alias
        first_package = info.install.split("--no-deps ")[1].split()[0].split("==")[0]
        assert f"``{first_package}``" in row.replace("\n       ", " "), (alias, first_package)
