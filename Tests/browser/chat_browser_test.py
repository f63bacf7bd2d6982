"""Drives the example chat page in two headless Chromium sessions (Selenium).

Usage: chat_browser_test.py BASE_URL SCREENSHOT_PATH

Alice and Bob open BASE_URL/chat/, join the same room, Alice sends a message and Bob's page must show it; a
screenshot of Bob's page is saved. Exits 0 on success, 1 with the reason otherwise.
"""

import sys
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def join(driver, base, name, room):
    driver.get(base + "/chat/")
    driver.find_element(By.ID, "name").send_keys(name)
    room_field = driver.find_element(By.ID, "room")
    room_field.clear()
    room_field.send_keys(room)
    driver.find_element(By.ID, "join-button").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def main():
    base, screenshot = sys.argv[1].rstrip("/"), sys.argv[2]
    room = "browser-" + uuid.uuid4().hex[:8]
    alice, bob = browser(), browser()
    try:
        join(alice, base, "alice", room)
        join(bob, base, "bob", room)
        WebDriverWait(alice, 20).until(
            expected_conditions.text_to_be_present_in_element((By.ID, "log"), "bob joined"))
        alice.find_element(By.ID, "message").send_keys("hello from alice")
        alice.find_element(By.ID, "send-button").click()
        WebDriverWait(bob, 20).until(
            expected_conditions.text_to_be_present_in_element((By.ID, "log"), "alice: hello from alice"))
        WebDriverWait(alice, 20).until(
            expected_conditions.text_to_be_present_in_element((By.ID, "log"), "alice: hello from alice"))
        bob.save_screenshot(screenshot)
        print("ok: bob saw alice's message; screenshot at " + screenshot)
        return 0
    except Exception as error:  # noqa: BLE001 - report any failure with the page state
        print("failed: %r" % (error,))
        for label, driver in (("alice", alice), ("bob", bob)):
            try:
                print("%s's log: %s" % (label, driver.find_element(By.ID, "log").text))
            except Exception:  # noqa: BLE001
                pass
        return 1
    finally:
        alice.quit()
        bob.quit()


if __name__ == "__main__":
    sys.exit(main())
