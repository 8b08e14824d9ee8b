"""One vocabulary (core/view/glossary.py and assets/glossary.json).

Proves:
- the shipped glossary validates (unique terms and aliases case-insensitively, non-empty definitions, known
  pages), and a bad file is refused with a ValueError naming the entry;
- lookup is case-insensitive over terms and aliases, tip raises KeyError on an unknown term, terms_in finds
  the longest names in a text, scale_note computes how far a toy is scaled down;
- coverage: on every page of the app at its defaults, every word of every title, header, subheader and
  metric label is a glossary term or alias, a proper name the engine loads (a model preset, a GPU), or in
  the explicit ORDINARY list below; a heading with new jargon fails until the glossary (or the list) grows;
- the vocabulary rule: "naive" appears in no heading, metric, label, option, tab, caption or text of any page
  (DeepSeek's name for materialised MLA is explained on the Glossary page only), and an old shared link's
  `heat=MLA naive` still opens the materialised heatmap.
"""

import json
import re
from pathlib import Path

import pytest
from apptest import assert_clean, open_page

from core.lab import needle
from core.model.gpus import GPUS
from core.model.presets import preset_names
from core.view import glossary
from core.view.urlcodec import parse_state
from core.view.urlstate import InsideState

ROOT = Path(__file__).resolve().parent.parent
APP_PAGES = re.findall(r'"(app_pages/\w+\.py)"', (ROOT / "app.py").read_text())

# Ordinary English (and plain units) allowed in headings and metric labels without a glossary entry. Keep it
# to words a newcomer knows without this app: jargon belongs in assets/glossary.json.
ORDINARY = set(
    """
    a all an and are as at be before beside by can captured card caches computes converted correction costs
    counted data decides does each every fewer first flow for from growing guided here how in instead is it
    its live loses lost measure memory models model next of on one or over path pattern per picks
    real request same see share sits step still takeaways text that the to trained until vs what where which
    who why wins with workshop your room answers question predictions predict reveal answer presenter progress
    back tokens token bytes byte size cost costs growing lightning keeps sequence sequences bigger smaller
    formula formulas function shapes shows shown shows error errors loses values weights layers layer by
    tiny claims run here three small decoded cells cell worst uncompressed glossary planner overview
    overview lab design designs compare numbers number length long short new old whole type types only
    stage stages step steps answered reveal your guesses guess truth distribution session code join joined
    ratio ratios time times seconds minutes count level levels bits bit total mean max min average
    probabilities probability similarity lower higher larger largest smallest fewest
    compute inside method methods recomputed their today files file top
    """.split()
)


def proper_names() -> set[str]:
    """Names the engine itself loads: model presets, GPUs and the tiny models (not jargon to define)."""
    return {n.casefold() for n in (*preset_names(), *GPUS, *needle.MODELS)}


def undefined_words(text: str, names: set[str]) -> set[str]:
    """Words of `text` that are neither a glossary term or alias, nor a proper name, a number or ORDINARY."""
    text = re.sub(r"(?<=\w)'s\b", "", text)  # possessives: "V4's claims"
    text = re.sub(r"\b\d[\d,.]*[KMG]?\b", " ", text)  # numbers and token counts: 128K
    rest = glossary.strip_terms(text)
    left = set()
    for word in re.findall(r"[A-Za-z][\w.'/-]*", rest):
        w = word.casefold().rstrip(".'-/").removesuffix("'s")
        if not w or w in names or w in ORDINARY or glossary.lookup(w):
            continue
        parts = [p for p in re.split(r"[-/]", w) if p]
        if len(parts) > 1 and all(p in ORDINARY or p in names or glossary.lookup(p) for p in parts):
            continue
        left.add(word)
    return left


# ----------------------------------------------------------------------------- the file


def test_shipped_glossary_validates_and_covers_the_vocabulary():
    entries = glossary.load()
    terms = {e.term for e in entries}
    vocabulary = "materialised expanded absorbed naive latent CSA HCA indexer page TP PP".split() + [
        "attention core", "attention block", "whole step", "rope key", "sliding window", "KV cache",
        "chunked attention", "full attention", "NoPE", "fp8_ds_mla", "DP", "short convolution", "MTP",
    ]  # fmt: skip
    assert set(vocabulary) <= terms, set(vocabulary) - terms
    assert all(e.definition and e.pages for e in entries)


def entry(**kw) -> dict:
    return {"term": "latent", "aliases": [], "definition": "A vector.", "pages": ["inside_mla"]} | kw


@pytest.mark.parametrize(
    "raw, message",
    [
        ([entry(), entry(term="LATENT")], "'LATENT' is already used by 'latent'"),
        ([entry(), entry(term="other", aliases=["Latent"])], "'Latent' is already used by 'latent'"),
        ([entry(definition="  ")], "non-empty definition"),
        ([entry(term="")], "non-empty term"),
        ([entry(pages=["nowhere"])], "pages must list"),
        ([entry(pages=[])], "pages must list"),
        ([entry(aliases="c_KV")], "aliases must be a list"),
        ([entry(colour="red")], "unknown fields: colour"),
        ([entry(definition="x" * 601)], "at most 600"),
        ([], "non-empty list"),
        ({"term": "latent"}, "non-empty list"),
    ],
)
def test_a_bad_glossary_is_refused_naming_the_entry(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        glossary.parse(raw)


def test_a_bad_file_names_the_entry(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps([entry(), entry(term="rope key", definition="")]))
    with pytest.raises(ValueError, match=r"glossary entry 1 \('rope key'\)"):
        glossary.load(path)


def test_lookup_is_case_insensitive_over_terms_and_aliases():
    assert glossary.lookup("MLA MATERIALISED").term == "materialised"
    assert glossary.lookup("c_kv").term == "latent"
    assert glossary.lookup("  Rope Key ").term == "rope key"
    assert glossary.lookup("hca").symbol is None and glossary.lookup("latent").symbol == "d_c"
    assert glossary.lookup("no such word") is None


def test_tip_gives_the_definition_and_raises_on_an_unknown_term():
    assert glossary.tip("Absorbed") == glossary.lookup("absorbed").definition
    with pytest.raises(KeyError, match="'absorbd' is not in the glossary"):
        glossary.tip("absorbd")


def test_terms_in_prefers_the_longest_name_and_whole_words():
    text = "The attention core of MLA materialised; MLAs and HCAx are not words here. V4-Pro's HCA."
    assert glossary.terms_in(text) == ["attention core", "materialised", "V4", "HCA"]
    assert glossary.terms_in("nothing to see") == []


def test_search_filters_and_sorts():
    hits = glossary.search("ROPE")
    assert [e.term for e in hits] == sorted((e.term for e in hits), key=str.casefold)
    assert {"rope key", "RoPE"} <= {e.term for e in hits}
    assert len(glossary.search("")) == len(glossary.load())
    assert glossary.search("zzzz-not-there") == []


def test_scale_note_says_how_far_a_toy_is_scaled_down():
    assert glossary.scale_note(16, 128, "pools", "V4-Pro") == "toy: 16; V4-Pro pools 128, 8x more"
    assert glossary.scale_note(8, 2048, "keeps", "V3.2") == "toy: 8; V3.2 keeps 2,048, 256x more"
    assert glossary.scale_note(4, 4, "pools", "V4-Pro") == "4, as in V4-Pro"
    assert glossary.scale_note(64, 32, "keeps", "X") == "toy: 64; X keeps 32, 2x fewer"
    with pytest.raises(ValueError, match="at least 1"):
        glossary.scale_note(0, 128, "pools", "V4-Pro")


def test_undefined_words_flags_jargon_and_passes_terms():
    names = proper_names()
    assert undefined_words("Materialised vs absorbed: same weights, same function", names) == set()
    assert undefined_words("Roofline on H200: where decode sits", names) == set()
    assert undefined_words("Flux capacitor of V4-Pro", names) == {"Flux", "capacitor"}


# ----------------------------------------------------------------------------- the pages


@pytest.fixture(scope="module")
def runs() -> dict:
    """Every page the app registers, run once at its defaults."""
    assert len(APP_PAGES) >= 10, APP_PAGES
    out = {}
    for page in APP_PAGES:
        at = open_page(page)
        assert_clean(at)
        out[page] = at
    return out


def headings(at) -> list[str]:
    return [e.value for kind in ("title", "header", "subheader") for e in at.get(kind)] + [m.label for m in at.metric]


def labels(at) -> list[str]:
    """Every user-facing string of a run: headings, metric labels, widget labels and options, tabs, captions,
    text, and table columns."""
    out = headings(at)
    for kind in ("selectbox", "radio", "select_slider", "slider", "multiselect", "number_input", "toggle",
                 "checkbox", "text_input", "tab", "expander"):  # fmt: skip
        for w in at.get(kind):
            out.append(str(getattr(w, "label", "")))
            out += [str(o) for o in getattr(w, "options", []) or []]
    out += [e.value for kind in ("caption", "markdown", "info", "success", "warning") for e in at.get(kind)]
    out += [str(c) for df in at.dataframe for c in df.value.columns]
    return out


def test_every_heading_and_metric_label_word_is_defined(runs):
    names = proper_names()
    missing = {}
    for page, at in runs.items():
        for text in headings(at):
            if words := undefined_words(text, names):
                missing[f"{page}: {text}"] = sorted(words)
    assert not missing, f"define these in assets/glossary.json (or add truly ordinary words to ORDINARY): {missing}"


def test_no_page_says_naive(runs):
    """The word had two meanings; pages say materialised or expanded. Only the Glossary explains it."""
    said = {
        page: [t for t in labels(at) if re.search(r"\bna[iï]ve\b", t, re.IGNORECASE)]
        for page, at in runs.items()
        if page != "app_pages/glossary.py"
    }
    assert not any(said.values()), said


def test_the_glossary_page_is_the_one_place_that_explains_naive(runs):
    at = runs["app_pages/glossary.py"]
    assert any("naive" in t.casefold() for t in labels(at))


def test_an_old_link_with_heat_mla_naive_opens_the_materialised_heatmap():
    assert parse_state(InsideState, {"heat": "MLA naive"}).heat_design == "MLA materialised"
    assert parse_state(InsideState, {"heat": "MLA materialised"}).heat_design == "MLA materialised"
    assert parse_state(InsideState, {"heat": "MLA naïf"}).notices  # anything else is still refused
