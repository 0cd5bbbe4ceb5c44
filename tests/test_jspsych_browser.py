"""The jsPsych experiment folder `avatar trials --format jspsych` writes, run in a real headless browser:
Debian's chromium driven by selenium, jsPsych 8 and its plugins from npm (installed once under ~/.cache),
the folder served over http as a study would be. A simulated participant watches each clip, presses a key
and answers the rating; the page's own data must then hold that participant's trials in the order of the
plain CSV list, with the right ids, factors and responses. Skips without node/npm, chromium, chromedriver
or selenium."""
import csv
import functools
import hashlib
import shutil
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from avatar_app.cli import main
from avatar_app.stimuli.jspsych import JSPSYCH_VERSION, PLUGINS

pytest.importorskip("selenium", reason="selenium is needed for the browser test")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

# The versions the folder pins for the CDN, so the test runs what a study loads by default.
NPM_PACKAGES = [f"jspsych@{JSPSYCH_VERSION}", *(f"{package}@{version}" for package, version, _ in PLUGINS.values())]
JSPSYCH_CACHE = (Path.home() / ".cache" / "avatar-tests" /  # a folder per set of versions
                 f"jspsych-{hashlib.sha256(' '.join(NPM_PACKAGES).encode()).hexdigest()[:12]}")
DESIGN = """\
# size: 64x64
# fps: 10
# end: 1.0
id,emotion,view
happy_front,happy,front
sad_left,sad,three-quarter left
surprised_front,surprised,front
"""
PARTICIPANT = 2            # not the first, so the URL parameter has to choose it
KEYS = ("f", "j")
BUTTONS = ("happy", "not happy")
WINDOW_MS = 1500
QUESTION = "How happy did the face look?"
WAIT_S = 15


def node_modules() -> Path:
    """jsPsych 8 and the plugins the folder may use, installed (once) from npm under ~/.cache."""
    if not shutil.which("npm"):
        pytest.skip("npm is needed to install jsPsych for the browser test")
    folder = JSPSYCH_CACHE / "node_modules"
    if not all((folder / package / "package.json").is_file() for package in ["jspsych", *(p for p, *_ in PLUGINS.values())]):
        JSPSYCH_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                               str(JSPSYCH_CACHE), *NPM_PACKAGES], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm could not install jsPsych: {done.stderr.strip()[-300:]}")
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless chromium through its chromedriver (the system's: nothing is downloaded); downloads land in
    a temporary folder."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium and chromedriver are needed for the browser test (Debian: apt-get install chromium "
                    "chromium-driver)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=640,480"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    chrome.downloads = downloads
    yield chrome
    chrome.quit()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A local web server, as a study is served, in an empty folder the experiment is written into."""
    root = tmp_path_factory.mktemp("site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def study(site, tmp_path_factory):
    """Three short clips, the jsPsych folder for them (jsPsych copied in from npm's node_modules), and the
    plain CSV lists made with the same seed: the reference for order, ids and factors."""
    root, address = site
    inputs = tmp_path_factory.mktemp("stimuli")
    (inputs / "design.csv").write_text(DESIGN)
    assert main(["stimuli", str(inputs / "design.csv"), "-o", str(inputs / "out"), "-q"]) == 0
    manifest = str(inputs / "out" / "manifest.json")
    common = ["trials", manifest, "--participants", "3", "--seed", "5"]
    assert main([*common, "-o", str(inputs / "lists")]) == 0
    jspsych = [*common, "--format", "jspsych", "--jspsych", str(node_modules()), "--rating", QUESTION]
    assert main([*jspsych, "-o", str(root / "keys"), "--response-keys", *KEYS]) == 0
    assert main([*jspsych, "-o", str(root / "buttons"), "--response-buttons", *BUTTONS, "--rating-scale", "slider",
                 "--response-window-ms", str(WINDOW_MS), "--fixation-ms", "0"]) == 0
    first, expected = (read_list(inputs / "lists" / f"participant_{n:03d}.csv") for n in (1, PARTICIPANT))
    assert [r["id"] for r in first] != [r["id"] for r in expected]  # so the page must pick the participant
    return address, expected


def read_list(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def wait_for(chrome, script, what, timeout=WAIT_S):
    """Polls a JavaScript expression until it is truthy; returns its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = chrome.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    page = chrome.execute_script("return document.body.innerText")[:300]
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page shows {page!r}; "
                         f"the console: {chrome.get_log('browser')}")


def downloaded_data(chrome) -> list[dict[str, str]]:
    """The rows of the one CSV the page downloaded, once written; the file is then deleted, so the next
    study's download is the only one."""
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        found = list(chrome.downloads.glob("*.csv"))
        if found and not list(chrome.downloads.glob("*.crdownload")):
            assert [path.name for path in found] == [f"participant_{PARTICIPANT:03d}_data.csv"]
            rows = read_list(found[0])
            found[0].unlink()
            return rows
        time.sleep(0.05)
    raise AssertionError(f"no CSV downloaded into {chrome.downloads}")


def console_errors(chrome):
    return [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


VIDEO = "document.querySelector('video')"
TRIAL = "jsPsych.getCurrentTrial()"
RATING = "document.querySelector('#jspsych-survey-likert-next')"


def open_study(chrome, folder: str) -> None:
    """The participant's page, past the welcome screen, with nothing on the console."""
    chrome.get(f"{folder}/index.html?participant={PARTICIPANT}")
    wait_for(chrome, "document.body.innerText.includes('space bar to begin')", "the welcome page")
    assert console_errors(chrome) == []
    ActionChains(chrome).send_keys(" ").perform()


def wait_for_clip(chrome, number: int, row: dict[str, str]) -> None:
    wait_for(chrome, f"{VIDEO} && {TRIAL}.stimulus[0].endsWith('/{Path(row['file']).name}')",
             f"trial {number + 1}'s clip, {row['file']}")
    assert chrome.execute_script(f"return {VIDEO}.src").startswith("blob:")  # played from the preload


def test_a_simulated_participant_runs_the_study(browser, study, tmp_path):
    address, expected = study
    open_study(browser, f"{address}/keys")
    pressed, rated = [], []
    for number, row in enumerate(expected):
        wait_for_clip(browser, number, row)
        if number == 0:
            start = browser.execute_script(f"return {VIDEO}.currentTime")
            wait_for(browser, f"{VIDEO}.currentTime > {start} + 0.2", "the first clip to play")
            browser.save_screenshot(str(tmp_path / "trial.png"))
            ActionChains(browser).send_keys("x").perform()  # not a response key: the clip goes on
            time.sleep(0.2)
            assert browser.execute_script(f"return {VIDEO} !== null && studyData().count() === 0")
        pressed.append(KEYS[number % 2])
        ActionChains(browser).send_keys(pressed[-1]).perform()
        wait_for(browser, f"!{VIDEO} && {RATING}", f"trial {number + 1} to end on the key press")
        points = browser.find_elements(By.CSS_SELECTOR, "input[type=radio]")
        rated.append(number % len(points) + 1)
        points[rated[-1] - 1].click()
        browser.find_element(By.ID, "jspsych-survey-likert-next").click()
    wait_for(browser, "window.studyDone", "the end of the study")
    assert console_errors(browser) == []

    want = [(r["id"], r["emotion"], r["view"], key, str(point)) for r, key, point in zip(expected, pressed, rated)]
    data = browser.execute_script("return studyData().values()")
    assert [(r["id"], r["emotion"], r["view"], r["response"], str(r["rating"])) for r in data] == want
    assert all(r["rt"] > 0 for r in data)
    saved = downloaded_data(browser)
    assert [(r["id"], r["emotion"], r["view"], r["response"], r["rating"]) for r in saved] == want


def test_buttons_a_response_window_and_a_slider(browser, study):
    """The other answers: a clip's buttons, no answer within the response window, a slider rating."""
    address, expected = study
    open_study(browser, f"{address}/buttons")
    clicked, rated = [], []
    for number, row in enumerate(expected):
        wait_for_clip(browser, number, row)
        clicked.append(None if number == 1 else BUTTONS[number // 2])
        if clicked[-1] is None:   # unanswered: the window ends the trial
            started = time.monotonic()
            wait_for(browser, f"!{VIDEO}", "the response window to end the trial")
            assert time.monotonic() - started > 0.5 * WINDOW_MS / 1000
        else:
            browser.find_elements(By.CSS_SELECTOR, "#jspsych-video-button-response-btngroup button")[
                BUTTONS.index(clicked[-1])].click()
        slider = wait_for(browser, "document.querySelector('#jspsych-html-slider-response-response')", "the slider")
        slider.send_keys(*[Keys.ARROW_RIGHT] * (number + 1))   # 50 -> 51, 52, 53
        rated.append(50 + number + 1)
        browser.find_element(By.ID, "jspsych-html-slider-response-next").click()
    wait_for(browser, "window.studyDone", "the end of the study")
    assert console_errors(browser) == []
    data = browser.execute_script("return studyData().values()")
    assert [(r["id"], r["response"] or "", r["rating"]) for r in data] == \
        [(r["id"], button or "", point) for r, button, point in zip(expected, clicked, rated)]
    assert data[1]["rt"] in (None, "") and data[0]["rt"] > 0 and data[2]["rt"] > 0
    assert [(r["id"], r["response"], r["rating"]) for r in downloaded_data(browser)] == \
        [(r["id"], button or "", str(point)) for r, button, point in zip(expected, clicked, rated)]
