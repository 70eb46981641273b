"""The page at `/`, driven in Debian's chromium through its chromium-driver (selenium; nothing is
downloaded): a person's path through it, checked at each step, with a screenshot of each state.

usage: page_browser.py BASE_URL KEY VIDEO_FILE SCREENSHOT_DIR LONG_VIDEO_ID OTHER_VIDEO_ID OTHER_NAME
(already in the library: LONG_VIDEO_ID, a 2-hour video to time a seek in; OTHER_VIDEO_ID, a ready
video no browser plays, named OTHER_NAME, markup a careless page would run.)
Prints one JSON line last: what was measured (page weight and timings, the moments seeked to).
"""

import gzip
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, KEY, VIDEO, SHOTS, LONG, OTHER, OTHER_NAME = sys.argv[1:8]
os.makedirs(SHOTS, exist_ok=True)
measured = {}

# What a first visit downloads, gzipped as a server or proxy would send it.
weight = 0
for asset in ["/", "/page/app.js", "/page/app.css", "/page/icon.svg"]:
    with urllib.request.urlopen(BASE + asset) as response:
        weight += len(gzip.compress(response.read(), 9))
measured["page_weight_gzip_bytes"] = weight


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new",
        "--no-sandbox",  # the tests may run as root, where chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",  # a container's /dev/shm is often too small for chromium
        "--window-size=1280,900",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        # Nothing but the page: no component updates, no safe-browsing lists, no sync.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


driver = browser()
wait = WebDriverWait(driver, 90, poll_frequency=0.1)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def js(script, *args):
    return driver.execute_script(script, *args)


def until(condition, what, timeout=90):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition())
    except Exception:
        shot(f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"timed out waiting for {what}")


def current_time():
    return js("return document.getElementById('player').currentTime")


def ready_player():
    return js("const p = document.getElementById('player'); return p && p.readyState >= 1")


def seeks_to(button, label):
    """Clicks `button` (anything with `data-t`) and checks the player lands on its moment."""
    target = float(button.get_attribute("data-t"))
    button.click()
    until(lambda: abs(current_time() - target) < 0.75, f"the player at {target} s after {label}", 15)
    return target


def console_errors():
    # A 401 while no key is given yet is the page asking for one, as it should.
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "status of 401" not in e["message"]
    ]


try:
    # 1. The page asks for the key once, and shows the library.
    started = time.monotonic()
    driver.get(BASE + "/")
    until(lambda: js("return document.getElementById('key-dialog').open"), "the key dialog")
    shot("01-key")
    driver.find_element(By.ID, "key-input").send_keys(KEY + Keys.ENTER)
    until(lambda: driver.find_elements(By.CSS_SELECTOR, ".video a.name"), "the library")
    measured["first_load_to_library_s"] = round(time.monotonic() - started, 3)
    timing = js(
        "const n = performance.getEntriesByType('navigation')[0];"
        "const p = performance.getEntriesByName('first-contentful-paint')[0];"
        "return {interactive_ms: n.domInteractive, loaded_ms: n.loadEventEnd,"
        " first_paint_ms: p ? p.startTime : null}"
    )
    measured.update(timing)
    assert "sk-" not in driver.current_url and KEY not in driver.current_url
    assert js("return sessionStorage.getItem('chatapi.key')") == KEY
    shot("02-library")

    # 2. Upload through the file picker; a progress bar, then the processing steps, then ready.
    js("document.getElementById('file-input').hidden = false")
    driver.find_element(By.ID, "file-input").send_keys(VIDEO)
    garden = "//li[contains(@class, 'video')][.//a[contains(., 'with-track')]]"
    until(lambda: driver.find_elements(By.XPATH, garden), "the uploaded video's card")
    shot("03-processing")
    until(lambda: driver.find_elements(By.XPATH, garden + "//*[contains(@class, 'ready')]"), "the video ready", 120)
    until(
        lambda: js(
            "const i = document.evaluate(arguments[0] + '//img', document, null, 9, null).singleNodeValue;"
            "return !!i && i.complete && i.naturalWidth > 0",
            garden,
        ),
        "the first keyframe shown",
    )
    card = driver.find_element(By.XPATH, garden)
    shot("04-library-ready")

    # 3. The video's page: the player, scenes, the transcript; a line seeks the player.
    card.find_element(By.CSS_SELECTOR, "a.name").click()
    until(lambda: driver.find_elements(By.CSS_SELECTOR, "#transcript button"), "the transcript")
    until(ready_player, "the player's metadata")
    lines = driver.find_elements(By.CSS_SELECTOR, "#transcript button")
    line = next(b for b in lines if "tomatoes" in b.text.lower())
    measured["transcript_line_s"] = seeks_to(line, "a transcript line")
    until(lambda: "current" in line.get_attribute("class"), "the spoken line highlighted")
    scene = driver.find_elements(By.CSS_SELECTOR, ".strip button")[-1]
    measured["keyframe_s"] = seeks_to(scene, "a keyframe")
    shot("05-video")

    # 4. Search, and a result opens the video at its moment.
    driver.find_element(By.CSS_SELECTOR, "[data-nav=search]").click()
    box = until(lambda: driver.find_element(By.ID, "search-input"), "the search box")
    box.send_keys("tomatoes" + Keys.ENTER)
    until(lambda: driver.find_elements(By.CSS_SELECTOR, "#results a"), "search results")
    shot("06-search")
    result = driver.find_element(By.CSS_SELECTOR, "#results a")
    expected = float(result.get_attribute("href").split("t=")[1])
    result.click()
    until(ready_player, "the player from a search result")
    until(lambda: abs(current_time() - expected) < 0.75, f"the player at the result's {expected} s", 15)
    measured["search_result_s"] = expected

    # 5. Chat: the answer streams in, its stamp is a link that seeks the player.
    question = until(lambda: driver.find_element(By.ID, "question"), "the chat box")
    question.send_keys("When are the tomatoes planted?")
    driver.find_element(By.ID, "send").click()
    until(lambda: driver.find_elements(By.CSS_SELECTOR, "#messages .assistant .cite"), "a cited answer")
    until(lambda: not driver.find_element(By.ID, "send").get_attribute("disabled"), "the answer's end")
    measured["answer"] = driver.find_element(By.CSS_SELECTOR, "#messages .assistant").text
    js("document.getElementById('player').currentTime = 0")
    measured["citation_s"] = seeks_to(driver.find_element(By.CSS_SELECTOR, "#messages .cite"), "a citation")
    shot("07-chat")
    # The conversation is kept for the page session.
    driver.refresh()
    until(lambda: driver.find_elements(By.CSS_SELECTOR, "#messages .assistant .cite"), "the chat kept after a reload")

    # 6. About two videos at once: a stamp only the other one has opens it at that moment; that
    # one no browser plays, and the page says so (its transcript, scenes and chat still there).
    until(lambda: driver.find_elements(By.CSS_SELECTOR, f"input[name=with][value='{OTHER}']"), "the other video to add")
    driver.find_element(By.CSS_SELECTOR, f"input[name=with][value='{OTHER}']").click()
    driver.find_element(By.ID, "question").send_keys("And in the other video?")
    driver.find_element(By.ID, "send").click()
    until(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#messages .assistant .cite")) >= 2, "the second answer")
    until(lambda: not driver.find_element(By.ID, "send").get_attribute("disabled"), "the second answer's end")
    driver.find_elements(By.CSS_SELECTOR, "#messages .assistant .cite")[-1].click()
    until(lambda: f"/v/{OTHER}" in driver.current_url, "the other video opened by its citation")
    measured["other_video_citation_s"] = int(driver.current_url.split("t=")[1])
    until(lambda: driver.find_element(By.ID, "cannot-play").is_displayed(), "the page saying it cannot play the file")
    assert "cannot play" in driver.find_element(By.ID, "cannot-play").text
    assert driver.find_element(By.TAG_NAME, "h1").text == OTHER_NAME, "the name must show as text"
    assert not js("return !!document.querySelector('img[src=x]')"), "a video's name ran as markup"
    shot("08-unplayable")

    # 7. Keyboard only: from the top of the library to a transcript line, by Tab and Enter.
    driver.get(BASE + "/#/")
    until(lambda: driver.find_elements(By.CSS_SELECTOR, ".video a.name"), "the library again")
    body = driver.find_element(By.TAG_NAME, "body")
    active = lambda: js("const a = document.activeElement; return a.className + '|' + a.textContent")  # noqa: E731
    for _ in range(30):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if active().startswith("name|with-track"):
            break
    assert active().startswith("name|with-track"), f"Tab never reached the video's link: {active()}"
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    until(lambda: driver.find_elements(By.CSS_SELECTOR, "#transcript button"), "the video page by keyboard")
    until(ready_player, "the player by keyboard")
    for _ in range(60):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if js("return !!document.activeElement.closest('#transcript')"):
            break
    focused = driver.switch_to.active_element
    assert js("return !!document.activeElement.closest('#transcript')"), f"Tab never reached the transcript: {active()}"
    outline = js("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), f"focus is not visible on a transcript line: {outline}"
    target = float(focused.get_attribute("data-t"))
    js("document.getElementById('player').currentTime = 5")
    focused.send_keys(Keys.ENTER)
    until(lambda: abs(current_time() - target) < 0.75, "Enter on a transcript line to seek", 15)
    shot("09-keyboard")

    # 8. A seek to a stamp deep in a 2-hour video plays within a second (Range requests).
    driver.get(BASE + f"/#/v/{LONG}")
    until(ready_player, "the 2-hour video's player")
    measured["seek_2h_ms"] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const p = document.getElementById('player');"
        "const t0 = performance.now();"
        "p.addEventListener('playing', () => done(Math.round(performance.now() - t0)), {once: true});"
        "p.currentTime = 5400; p.play();"
    )
    assert abs(current_time() - 5400) < 2, f"the 2-hour video played from {current_time()}"

    # 9. A phone-width screen scrolls down, never sideways.
    driver.set_window_size(390, 844)
    driver.get(BASE + "/#/")
    until(lambda: driver.find_elements(By.CSS_SELECTOR, ".video"), "the library at phone width")
    width = js("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is wider than a phone's screen: {width}"
    shot("10-phone")

    # 10. Delete, after a confirmation.
    driver.find_element(By.XPATH, garden).find_element(By.CSS_SELECTOR, "button.quiet").click()
    until(lambda: js("return document.getElementById('confirm-dialog').open"), "the confirmation")
    driver.find_element(By.ID, "confirm-yes").click()
    until(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".video")) == 2, "the video deleted")

    # Nothing left loopback, and nothing went wrong in the console.
    urls = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    outside = [u for u in urls if not (u.startswith(BASE + "/") or u.startswith(("data:", "blob:")))]
    assert not outside, f"requests left this server: {outside}"
    measured["requests_seen"] = len(urls)
    errors = console_errors()
    assert not errors, f"console errors: {errors}"
finally:
    driver.quit()

print(json.dumps(measured))
