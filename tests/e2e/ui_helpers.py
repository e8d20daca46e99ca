"""
Helpers for the web page tests (test_ui.py): signing in over plain HTTP
(requests) and driving headless Chromium (selenium).

  login_session(d, user, pw, source=None) -> requests.Session signed in
  page_csrf(html) -> the CSRF token of the first form on a page
  form_post(s, d, path, fields, **kw) -> response (no redirects followed)
  Browser(driver) with .login(d, user, pw), .wait_for(fn), .text(css) ...
  make_browser() -> a started headless Chromium (fresh profile)

Every wait is bounded.
"""

import os
import re
import shutil
import tempfile
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import REQUEST_TIMEOUT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 5.0  # seconds for anything the browser must show

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def login_session(d, user, password, source=None):
    """A requests.Session holding a page session cookie for user."""
    s = requests.Session()
    if source is not None:
        from conftest import SourceAdapter
        s.mount("http://", SourceAdapter(source))
    r = s.post(d.url + "/login", data={"user": user, "password": password, "next": "/"},
               allow_redirects=False, timeout=REQUEST_TIMEOUT)
    assert r.status_code == 303, "login as %s -> %d %r" % (user, r.status_code, r.text[:300])
    return s


def page_csrf(html):
    m = CSRF_RE.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def get_page(s, d, path):
    r = s.get(d.url + path, allow_redirects=False, timeout=REQUEST_TIMEOUT)
    assert r.status_code == 200, "%s -> %d %r" % (path, r.status_code, r.text[:300])
    return r.text


def form_post(s, d, path, fields, **kw):
    kw.setdefault("allow_redirects", False)
    kw.setdefault("timeout", REQUEST_TIMEOUT)
    return s.post(d.url + path, data=fields, **kw)


def wait_until(fn, timeout=WAIT, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page may be reloading
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))


def have_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


class Browser:
    """A thin layer over a selenium driver for these tests."""

    def __init__(self, driver, profile):
        self.driver = driver
        self.profile = profile

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def reset(self):
        self.driver.delete_all_cookies()

    def get(self, url):
        self.driver.get(url)

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css).text

    def wait_for(self, fn, timeout=WAIT, what="condition"):
        return wait_until(fn, timeout=timeout, what=what)

    def wait_url(self, fragment, timeout=WAIT):
        return self.wait_for(lambda: fragment in self.driver.current_url, timeout,
                             "URL containing %r (now %r)" % (fragment, self.driver.current_url))

    def login(self, d, user, password, next_path="/health/managenodes"):
        self.get(d.url + next_path)
        self.wait_url("/login")
        self.find("#login-user").send_keys(user)
        self.find("#login-password").send_keys(password)
        self.find("form[action='/login'] button[type=submit]").click()
        # The login page's own URL (/login?next=PATH) contains PATH too:
        # wait for the redirect to have left it.
        self.wait_for(lambda: urlsplit(self.driver.current_url).path == next_path, WAIT,
                      "the redirect to %r (now %r)" % (next_path, self.driver.current_url))
        self.wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete")

    def row_status(self, node):
        return self.text("tr[data-node='%s'] .c-status" % node)

    def screenshot(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.driver.save_screenshot(path)


def make_browser(width=1280, height=900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile, "--window-size=%d,%d" % (width, height),
                "--force-device-scale-factor=1", "--hide-scrollbars"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail("cannot start headless Chromium: %s" % e)
    driver.set_page_load_timeout(15)
    driver.set_script_timeout(10)
    return Browser(driver, profile)
