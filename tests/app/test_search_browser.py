"""The search page in a real browser (Debian chromium, headless, via Playwright) against a real uvicorn server:
search by uploaded image, open a result, "more like this", search by text and by an uploaded pair."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsir.data.demo import demo_archive_path

CHROMIUM = Path(os.environ.get("RSIR_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("requestfailed", lambda req: problems.append(f"failed {req.url}"))
    page.goto(live_server.url + "/")
    page.wait_for_function("document.querySelectorAll('#label option').length > 1")  # /api/info answered
    yield page
    context.close()
    assert not problems, problems


def _loaded_images(page) -> list[bool]:
    return page.eval_on_selector_all("#results img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")


def test_image_search_details_and_more_like_this(page, tmp_path: Path):
    page.set_input_files("#file", str(demo_archive_path() / "storagetanks" / "storagetanks03.jpg"))
    page.wait_for_selector("#results .hit.scene")
    hits = page.locator("#results .hit")
    assert hits.count() == 20  # k defaults to 20 on the page
    first = hits.nth(0)
    assert first.locator(".hit-id").inner_text() == "storagetanks/storagetanks03"
    assert float(first.locator(".score").inner_text()) == pytest.approx(1, abs=1e-3)
    assert "168 scenes" in page.inner_text("#status")
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
    assert all(_loaded_images(page))
    page.screenshot(path=str(tmp_path / "image-search.png"), full_page=True)

    hits.nth(1).click()
    page.wait_for_selector("#details[open] table")
    second_id = page.inner_text("#details-title")
    assert "labels" in page.inner_text("#details-body")
    page.click("#more-like-this")
    page.wait_for_function(f"document.querySelector('#status').textContent.includes({second_id!r})")
    ids = page.locator("#results .hit .hit-id").all_inner_texts()
    assert len(ids) == 20 and second_id not in ids  # "more like this" leaves the item itself out

    page.select_option("#label", "beach")  # the filter re-runs the query
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('8 scenes')")
    labels = page.locator("#results .hit .labels").all_inner_texts()
    assert labels == ["beach"] * 8
    assert (tmp_path / "image-search.png").stat().st_size > 10_000


def test_text_and_pair_search_show_pairs_side_by_side(page, itsr_app, tmp_path: Path):
    page.select_option("#mode", "text")
    page.fill("#q", "a new building appeared")
    page.click("#search-button")
    page.wait_for_selector("#results .hit.pair")
    pairs = page.locator("#results .hit.pair")
    assert pairs.count() == 4  # the whole 4-pair test gallery
    assert not page.is_visible("#pager")  # one page only
    assert pairs.nth(0).locator("img").count() == 2
    assert pairs.nth(0).locator(".side-label").all_inner_texts() == ["BEFORE", "AFTER"]
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
    assert all(_loaded_images(page))
    boxes = [pairs.nth(0).locator("img").nth(i).bounding_box() for i in (0, 1)]
    assert boxes[0]["x"] < boxes[1]["x"] and abs(boxes[0]["y"] - boxes[1]["y"]) < 2  # side by side
    page.screenshot(path=str(tmp_path / "text-search.png"), full_page=True)

    pairs.nth(0).click()
    page.wait_for_selector("#details[open] table")
    assert page.locator("#details-images img").count() == 2 and "caption 1" in page.inner_text("#details-body")
    page.keyboard.press("Escape")

    gallery = itsr_app.state.service.pairs.pairs
    page.set_input_files("#before", str(gallery[2].before))
    page.set_input_files("#after", str(gallery[2].after))
    page.click("#pair-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('uploaded pair')")
    assert page.locator("#results .hit .hit-id").nth(0).inner_text() == gallery[2].id
    assert page.locator("#captions li").count() >= 1 and page.is_visible("#captions")
    page.screenshot(path=str(tmp_path / "pair-search.png"), full_page=True)
