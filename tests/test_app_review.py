"""The Review sheet page, run through app.py's router with Streamlit's AppTest.

What it proves:
- at the defaults the page renders two candidates (DeepSeek-V3 on 8 x H200 as TP8, latent and fp8_ds_mla)
  with the sheet and its PNG, SVG and PDF downloads, and no exception or error;
- every number input and the slider at its minimum and maximum, and the first and last option of every
  selectbox, raise nothing; an st.error appears only where a candidate cannot be planned, and says so;
- a bad link value is dropped with a warning, never a traceback, and the good candidates stay;
- the link the page writes back parses to the view it shows, and opening it restores every widget;
- the sheet's names come from the link, a 60-character one included.
"""

import pytest
from apptest import assert_clean, assert_no_exception, open_page, unescaped

from core.view.urlcodec import parse_state
from core.view.urlstate import ReviewState

P = "review."
LABEL_60 = "Option W: DeepSeek-V3 MLA on eight H200 with fp8 cache & TP8"  # 60 characters


def run(query: dict | None = None):
    return open_page("app_pages/review.py", query)


def state(at) -> ReviewState:
    return parse_state(ReviewState, {k: at.query_params[k] for k in at.query_params})


def test_defaults_render_two_candidates_and_the_downloads():
    at = run()
    assert_clean(at)
    assert at.title[0].value == "Review sheet"
    assert at.number_input(key=P + "count").value == 2
    assert at.selectbox(key=P + "1.layout").value == "fp8_ds_mla"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["PNG", "SVG", "PDF"], labels
    assert len(at.get("image")) == 1
    assert state(at) == ReviewState()


def errors_explained(at) -> None:
    assert_no_exception(at)
    assert all("cannot be planned" in unescaped(e.value) for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize(
    "key, value",
    [
        ("count", 1),
        ("count", 4),
        ("context", 1),
        ("context", 1 << 24),
        ("0.n_gpus", 1),
        ("0.n_gpus", 1024),
        ("0.tp", 0),
        ("0.tp", 1024),
    ],
)
def test_number_inputs_at_their_ends(key, value):
    at = run()
    at.number_input(key=P + key).set_value(value).run()
    errors_explained(at)
    if key == "count":
        assert len(state(at).candidates) == value


@pytest.mark.parametrize("value", [5, 100])
def test_utilization_at_its_ends(value):
    at = run()
    at.slider(key=P + "utilization").set_value(value).run()
    errors_explained(at)
    assert state(at).utilization == value


@pytest.mark.parametrize("field", ["model", "gpu", "layout", "kv_dtype", "weight_dtype"])
def test_every_select_at_its_first_and_last_option(field):
    at = run()
    box = at.selectbox(key=f"{P}1.{field}")
    for option in (box.options[0], box.options[-1]):
        at.selectbox(key=f"{P}1.{field}").set_value(option).run()
        errors_explained(at)
        assert getattr(state(at).candidates[1], field) == option


def test_theme_and_formulas_switch_and_go_into_the_link():
    at = run()
    at.toggle(key=P + "formulas").set_value(False).run()
    assert_clean(at)
    assert at.query_params["formulas"] == "0"


def test_a_bad_link_warns_and_keeps_the_good_candidates():
    at = run(
        {
            "c": "deepseek-v3~H200~8~8~latent~auto~native,gpt-9~H200~8~8~latent~auto~native",
            "util": "500",
            "zzz": "1",
        }
    )
    assert_clean(at)
    warnings = " ".join(unescaped(w.value) for w in at.warning)
    assert "candidate 2 left out" in warnings and "utilization" in warnings and "zzz" in warnings
    assert at.number_input(key=P + "count").value == 1


def test_the_link_round_trips_and_restores_every_widget():
    link = {
        "c": "llama-3.1-70b~H100 SXM~4~0~materialised~fp8~int4~" + LABEL_60 + ","
        "deepseek-v3~B200~8~8~fp8_ds_mla~auto~native,qwen3-next-80b-a3b~MI300X~2~2~latent~bf16~fp8",
        "context": "32768",
        "util": "80",
        "theme": "dark",
        "formulas": "0",
    }
    at = run(link)
    assert_clean(at)
    assert not at.warning
    assert {k: at.query_params[k] for k in at.query_params} == link
    assert at.number_input(key=P + "count").value == 3
    assert at.text_input(key=P + "0.label").value == LABEL_60
    assert at.selectbox(key=P + "2.model").value == "qwen3-next-80b-a3b"
    assert at.number_input(key=P + "context").value == 32768


def test_a_candidate_that_cannot_be_planned_is_an_error_and_the_others_render():
    at = run({"c": "llama-3.1-70b~H200~8~3~latent~auto~native,deepseek-v3~H200~8~8~latent~auto~native"})
    errors_explained(at)
    assert len(at.error) == 1 and len(at.get("image")) == 1
