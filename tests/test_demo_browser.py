"""The demo used as a person uses it: ``python app.py`` in a subprocess, driven in headless Chromium.

Playwright's sync API drives Debian's ``/usr/bin/chromium`` (never ``playwright install``). The test opens the
page, classifies an example and an uploaded image, goes through every tab, generates, transfers and fuses,
checks that a broken upload shows a clear message, and saves a screenshot of each tab to a temporary folder
and, when ``UNIEMO_SCREENSHOTS_DIR`` is set, into that folder too (``assets/screenshots/`` is refreshed that
way). The model is the session's tiny test model, or ``UNIEMO_E2E_MODEL`` when set (for example the bundled
``assets/uniemo-tiny``, whose images are worth a screenshot):

    UNIEMO_E2E_MODEL=assets/uniemo-tiny UNIEMO_SCREENSHOTS_DIR=assets/screenshots pytest tests/test_demo_browser.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from uniemo.constants import EMOTIONS

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "assets" / "examples").glob("*.png"))
# Without the background-networking flags Chromium keeps calling Google's hosts, which this network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT_S = 180
RUN_TIMEOUT_MS = 120_000
STEPS = 20  # typed into each generation tab: quick on a CPU, and a usual fast setting for the sampler

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                     "(apt-get install -y chromium); never 'playwright install'"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(request) -> Path:
    override = os.environ.get("UNIEMO_E2E_MODEL")
    return Path(override).resolve() if override else request.getfixturevalue("tiny_model_dir")


@pytest.fixture(scope="module")
def app_url(model_dir, tmp_path_factory):
    """``python app.py --model <model>`` on a free port, polled until it answers."""
    work = tmp_path_factory.mktemp("app")
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
           "GRADIO_EXAMPLES_CACHE": str(work / "examples_cache")}
    env.pop("UNIEMO_MODEL", None)
    log_path = work / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", str(model_dir),
                                    "--device", "cpu"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def page(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(RUN_TIMEOUT_MS)
        page.goto(app_url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """Save a full-page screenshot under a name, to a temporary folder and to $UNIEMO_SCREENSHOTS_DIR."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("UNIEMO_SCREENSHOTS_DIR")

    def save(page, name: str, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


def image_src(page, selector: str) -> str | None:
    images = page.locator(f"{selector} img")
    return images.first.get_attribute("src") if images.count() else None


def wait_for_new_image(page, selector: str, old: str | None) -> str:
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel + ' img');"
        " return img && img.complete && img.naturalWidth > 0 && img.getAttribute('src') !== old; }",
        arg=[selector, old])
    return image_src(page, selector)


def wait_for_gallery(page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([sel, n]) => [...document.querySelectorAll(sel + ' img')]"
        ".filter(img => img.complete && img.naturalWidth > 0).length >= n", arg=[selector, count])


def set_steps(page, prefix: str, steps: int) -> None:
    """Type a step count into a tab's sampling controls, as a person would, to keep the run short."""
    box = page.locator(f"#{prefix}-sampling input[aria-label='number input for Denoising steps']")
    box.fill(str(steps))
    box.press("Enter")


def test_the_page_names_the_model_not_its_path(page, model_dir):
    line = page.locator("#model-line")
    line.wait_for()
    assert model_dir.name in line.inner_text()
    assert str(model_dir.parent) not in page.content() and str(ROOT) not in page.content()
    assert page.get_by_role("tab").all_inner_texts() == ["Understand", "Generate", "Transfer", "Fuse", "About"]


def test_understand_warns_when_the_model_knows_only_emoshapes(page, model_dir):
    from demo.about import trained_on_emoshapes

    info = json.loads((model_dir / "uniemo.json").read_text())
    notice = page.locator("#cls-notice")
    if trained_on_emoshapes(SimpleNamespace(info=info)):  # the bundled UniEmo-Tiny
        assert "not to be trusted" in notice.inner_text()
    else:
        assert notice.count() == 0


def test_understand_an_example_and_an_upload(page, shoot):
    page.get_by_role("tab", name="Understand").click()
    before = image_src(page, "#cls-scene")
    page.locator("#cls-examples button.gallery-item").nth(2).click()  # a cached example's result
    shown = wait_for_new_image(page, "#cls-scene", before)
    page.locator("#cls-image input[type=file]").set_input_files(str(EXAMPLES[-1]))
    page.locator("#cls-button").click()  # the live model on a new image
    wait_for_new_image(page, "#cls-scene", shown)
    wait_for_new_image(page, "#cls-object", None)
    label = page.locator("#cls-label").inner_text()
    assert "%" in label and all(emotion in label for emotion in EMOTIONS)
    assert page.locator("#cls-attributes").inner_text().count("scene") >= 3
    shoot(page, "understand")


def test_generate(page, shoot):
    page.get_by_role("tab", name="Generate").click()
    set_steps(page, "gen", STEPS)
    page.locator("#gen-button").click()
    wait_for_gallery(page, "#gen-gallery", 2)
    assert "seed 1" in page.locator("#gen-gallery").inner_text()
    shoot(page, "generate")


def test_transfer(page, shoot):
    page.get_by_role("tab", name="Transfer").click()
    set_steps(page, "tr", STEPS)
    page.locator("#tr-button").click()
    wait_for_gallery(page, "#tr-gallery", 2)
    wait_for_gallery(page, "#tr-neutral", 2)
    assert "(neutral)" in page.locator("#tr-neutral").inner_text()
    shoot(page, "transfer")


def test_fuse_with_the_weight_sweep(page, shoot):
    page.get_by_role("tab", name="Fuse").click()
    set_steps(page, "fu", STEPS)
    page.get_by_label("Also sweep the weight").check()
    page.locator("#fu-button").click()
    wait_for_gallery(page, "#fu-sweep", 5)
    wait_for_gallery(page, "#fu-gallery", 2)
    assert "w = 0.50" in page.locator("#fu-sweep").inner_text()
    shoot(page, "fuse")


def test_about(page, shoot, model_dir):
    page.get_by_role("tab", name="About").click()
    about = page.locator("#about")
    about.wait_for()
    text = about.inner_text()
    assert "arXiv:2507.23372" in text and "amusement, awe" in text
    # numbers only from a report file; the test model has none, so none are shown
    has_report = (model_dir / "report.json").is_file() or (model_dir.parent / "report.json").is_file()
    assert ("Measured numbers from" in text) if has_report else ("No measured numbers" in text)
    shoot(page, "about")


def test_a_broken_upload_shows_a_clear_message(page, shoot, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(EXAMPLES[0].read_bytes()[:300])  # a PNG cut short
    page.get_by_role("tab", name="Understand").click()
    page.locator("#cls-image input[type=file]").set_input_files(str(broken))
    page.locator("#cls-button").click()
    message = page.get_by_text("truncated or corrupt")
    message.first.wait_for()
    # the toast slides in; wait until it is fully shown so that the screenshot has it
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=toast-body]')]"
                           ".some(t => getComputedStyle(t).opacity === '1')")
    status = page.locator("#cls-status")
    page.wait_for_function("() => document.querySelector('#cls-status').innerText"
                           ".includes('truncated or corrupt')")
    shoot(page, "error", full_page=False)  # the toast is fixed to the viewport
    # the pop-up goes; the message stays in the tab's status line
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()
    page.wait_for_function("() => !document.querySelector('[data-testid=toast-body]')")
    assert "truncated or corrupt" in status.inner_text()
    # and the page still works: a good image right after is classified, and the status line is cleared
    page.locator("#cls-image input[type=file]").set_input_files(str(EXAMPLES[1]))
    page.locator("#cls-button").click()
    wait_for_new_image(page, "#cls-scene", None)
    assert "%" in page.locator("#cls-label").inner_text()
    page.wait_for_function("() => document.querySelector('#cls-status').innerText.trim() === ''")
