"""A real browser (Debian chromium, headless, driven by Playwright) answers pairs with the keyboard:
name, similar / dissimilar / skip, undo, zoom, the "preparing next round" state, the next round,
the dashboard. Screenshots go to the test's temp dir (and to $RSIR_DOCS_SCREENSHOT when set)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_support import (  # noqa: E402
    ThreadServer,
    archive_copy,  # noqa: F401  (fixture)
    demo_embeddings,  # noqa: F401  (fixture)
    open_campaign,
)

from rsir.active.db import QuestionRow  # noqa: E402

CHROMIUM = Path(os.environ.get("RSIR_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium chromium-driver")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _answers(campaign) -> dict[int, tuple[int, str]]:
    with campaign.store.session() as s:
        rows = s.execute(
            select(QuestionRow.id, QuestionRow.label, QuestionRow.annotator).where(
                (QuestionRow.campaign_id == campaign.id) & QuestionRow.label.is_not(None)
            )
        ).all()
    return {r.id: (r.label, r.annotator) for r in rows}


def test_browser_answers_pairs_with_the_keyboard(browser, archive_copy, demo_embeddings, tmp_path):  # noqa: F811
    from rsir.app.annotate import create_annotate_app

    # enough steps that "preparing the next round" stays on screen for a moment
    campaign = open_campaign(archive_copy, demo_embeddings, str(tmp_path / "c.db"), steps=60)
    errors: list[str] = []
    with ThreadServer(create_annotate_app(campaign, cache_dir=tmp_path / "thumbs")) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(90_000)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.goto(server.url + "/")
        page.wait_for_selector('body[data-phase="name"]')
        page.fill("#name", "alice")
        page.keyboard.press("Enter")

        def current() -> int:
            page.wait_for_selector('body[data-phase="ready"]')
            loaded = "i => i.complete && i.naturalWidth > 0 && !i.classList.contains('loading')"
            page.wait_for_function(f"() => [...document.querySelectorAll('.viewport img')].every({loaded})")
            return int(page.get_attribute("body", "data-question"))

        def press(key: str) -> int:
            before = current()
            page.keyboard.press(key)
            page.wait_for_function(f"() => document.body.dataset.question !== '{before}' || "
                                   "document.body.dataset.phase !== 'ready'")  # fmt: skip
            return before

        q1 = press("s")
        q2 = press("d")
        q3 = press("Space")
        assert page.inner_text("#size-a").endswith("px")  # the image's own resolution is shown
        page.keyboard.press("u")  # undo: the skipped pair comes back, its old answer marked
        page.wait_for_function(f"() => document.body.dataset.question === '{q3}'")
        assert "previous" in page.get_attribute("#skip", "class")
        page.keyboard.press("+")
        assert "scale(1.25)" in page.get_attribute("#img-a", "style")
        assert "scale(1.25)" in page.get_attribute("#img-b", "style")  # both images zoom together
        page.keyboard.press("0")
        assert "scale(1)" in page.get_attribute("#img-a", "style")
        q3 = press("ArrowLeft")
        assert _answers(campaign) == {q1: (1, "alice"), q2: (0, "alice"), q3: (1, "alice")}
        assert "Round 1 of 2: 3 / 8 answered" in page.inner_text("#progress-text")
        current()
        page.screenshot(path=str(tmp_path / "annotate.png"))
        if os.environ.get("RSIR_DOCS_SCREENSHOT"):
            shutil.copy(tmp_path / "annotate.png", os.environ["RSIR_DOCS_SCREENSHOT"])

        for key in ["d", "s", "d", "ArrowRight"]:
            press(key)
        page.keyboard.press("d")  # the round's last answer: the next round is prepared in the background
        page.wait_for_selector('body[data-phase="preparing"]')
        assert "Preparing the next round" in page.inner_text("#notice-text")
        current()  # the next round arrives by itself
        assert "Round 2 of 2: 0 / 4 answered" in page.inner_text("#progress-text")
        assert len(_answers(campaign)) == 8

        page.goto(server.url + "/dashboard")
        page.wait_for_selector("#answers tbody tr")
        assert "alice" in page.inner_text("#answers") and "8" in page.inner_text("#answers")
        page.wait_for_function("() => document.getElementById('curve').naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    campaign.stop(timeout=60)
    assert (tmp_path / "annotate.png").stat().st_size > 10_000
    assert not errors, errors


def test_an_invite_link_answers_as_its_annotator_and_no_url_repeats_a_token(browser, archive_copy, demo_embeddings,  # noqa: F811
                                                                            tmp_path):  # fmt: skip
    """An annotator opens their invite link: no name is asked, answers are theirs, images load with the cookie
    alone; the owner's dashboard (opened with the shared token) refreshes its chart without the token; after
    the first request of each page, no URL carries ?token= (it would end up in logs and history)."""
    from rsir.active.annotators import invite
    from rsir.app.annotate import create_annotate_app

    shared = "owner-s3cret-owner-s3cret"
    campaign = open_campaign(archive_copy, demo_embeddings, str(tmp_path / "c.db"))
    personal = invite(campaign.store, campaign.id, "alice")
    errors: list[str] = []
    urls: list[str] = []
    with ThreadServer(create_annotate_app(campaign, token=shared, cache_dir=tmp_path / "thumbs")) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.on("request", lambda request: urls.append(request.url))
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.goto(f"{server.url}/?token={personal}")
        page.wait_for_selector('body[data-phase="ready"]')
        loaded = "i => i.complete && i.naturalWidth > 0 && !i.classList.contains('loading')"
        page.wait_for_function(f"() => [...document.querySelectorAll('.viewport img')].every({loaded})")
        assert page.inner_text("#who") == "answering as alice"
        assert not page.is_visible("#change-name") and not page.is_visible("#dashboard-nav")
        assert "token" not in page.evaluate("location.href")
        first = int(page.get_attribute("body", "data-question"))
        page.keyboard.press("s")
        page.wait_for_function(f"() => document.body.dataset.question !== '{first}'")
        assert _answers(campaign) == {first: (1, "alice")}

        dash = context.new_page()  # the owner, in another tab: the shared token's link replaces the cookie
        dash.set_default_timeout(90_000)
        dash.on("pageerror", lambda err: errors.append(str(err)))
        dash.goto(f"{server.url}/dashboard?token={shared}")
        dash.wait_for_selector("#answers tbody tr")
        dash.wait_for_function("() => document.getElementById('curve').naturalWidth > 0")
        assert "alice" in dash.inner_text("#answers") and "token" not in dash.evaluate("location.href")
        assert "token" not in dash.get_attribute("#curve", "src")
        dash.wait_for_timeout(5_500)  # one refresh of the chart
    campaign.stop(timeout=60)
    with_token = [u for u in urls if "token=" in u]
    assert with_token == [f"{server.url}/?token={personal}", f"{server.url}/dashboard?token={shared}"], with_token
    assert sum("/api/dashboard/curve.svg" in u for u in urls) >= 2
    assert not errors, errors
