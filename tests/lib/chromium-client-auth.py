#!/usr/bin/python3
"""Chromium opens an https URL whose server demands a client certificate, and
prints the page's text: the test's proof that the browser made the handshake
with a key on the card.

    chromium-client-auth.py URL PIN-FILE [chromium arguments...]

Chromium runs with a window (on the X display in $DISPLAY, Xvfb in the
tests), because it asks for the card's PIN with a dialog of its own, which
headless mode cannot show. The client certificate is chosen by the
AutoSelectCertificateForUrls policy (the test puts it in place); this script
types the PIN into its "Unlock Security Device" dialog with xdotool, as a
person would, and reads the page over the DevTools protocol on a pipe
(--remote-debugging-pipe: fds 3 and 4, NUL-separated JSON), so no port is
opened. Exit status 0 when the page loaded, 1 otherwise (no handshake, or
Chromium asked for the PIN again); Chromium is closed either way. A test
harness: the PIN passes through xdotool's command line."""

import json
import os
import select
import subprocess
import sys
import time

DIALOG_TITLE = "Security Device"   # Chromium's "Unlock Security Device" (xdotool matches without case)
TIMEOUT = 60


class DevTools:
    def __init__(self, to_browser, from_browser):
        self.out = to_browser
        self.inp = from_browser
        self.buf = b""
        self.next_id = 0
        self.replies = {}     # answers that came while we waited for another

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.out, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def call(self, method, params=None, session=None, timeout=30):
        msg_id = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "id" in reply:
                self.replies[reply["id"]] = reply

    def _read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.inp], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.inp, 65536)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)


def pin_dialogs():
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", DIALOG_TITLE],
                           capture_output=True, text=True)
    return found.stdout.split()


def type_pin(win, pin):
    # No window manager under Xvfb: give the dialog the keyboard directly,
    # then type as a keyboard would (XTEST events to the focused window).
    subprocess.run(["xdotool", "windowfocus", "--sync", win, "type", "--delay", "20", pin], check=False)
    subprocess.run(["xdotool", "key", "Return"], check=False)


def main():
    url, pin_file = sys.argv[1], sys.argv[2]
    with open(pin_file) as f:
        pin = f.read().strip()
    cmd_r, cmd_w = os.pipe()     # we write commands, Chromium reads fd 3
    ev_r, ev_w = os.pipe()       # Chromium writes fd 4, we read

    def child_fds():
        # By way of fds 100 and 101, in case a pipe already is fd 3 or 4;
        # dup2 to another number makes an inheritable copy (ours are not, PEP 446).
        os.dup2(cmd_r, 100)
        os.dup2(ev_w, 101)
        os.dup2(100, 3)
        os.dup2(101, 4)
        os.close(100)
        os.close(101)

    browser = subprocess.Popen(
        ["chromium", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
         "--disable-gpu", "--password-store=basic", *sys.argv[3:], "about:blank"],
        preexec_fn=child_fds, close_fds=False)
    os.close(cmd_r)
    os.close(ev_w)
    dt = DevTools(cmd_w, ev_r)
    ok = False
    try:
        pages = [t for t in dt.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        session = dt.call("Target.attachToTarget",
                          {"targetId": pages[0]["targetId"], "flatten": True})["sessionId"]
        # Page.navigate returns once the navigation commits, which waits on the
        # handshake, which waits on the PIN: send it and do not wait here.
        navigation = dt.send("Page.navigate", {"url": url}, session)
        typed_at = None       # when the PIN went into the dialog (typed once only)
        gone = False          # has the dialog closed since?
        deadline = time.monotonic() + TIMEOUT
        text = ""
        while time.monotonic() < deadline:
            dialogs = pin_dialogs()
            if dialogs and typed_at is None:
                type_pin(dialogs[-1], pin)
                typed_at = time.monotonic()
                print("typed the PIN into the dialog", file=sys.stderr)
            elif typed_at is not None:
                gone = gone or not dialogs
                # Asked again (a wrong PIN), or the dialog did not take it.
                if dialogs and (gone or time.monotonic() - typed_at > 8):
                    print("Chromium asks for the PIN again", file=sys.stderr)
                    break
            time.sleep(0.5)
            try:
                res = dt.call("Runtime.evaluate",
                              {"expression": "location.href + '\\n' + (document.body ? document.body.innerText : '')",
                               "returnByValue": True}, session=session, timeout=5)
            except TimeoutError:
                continue
            text = res.get("result", {}).get("value", "")
            if text.startswith(url) and "Client certificate" in text:
                ok = True
                break
            failed = dt.replies.get(navigation, {}).get("result", {}).get("errorText")
            if failed:        # no handshake: net::ERR_...
                print(failed, file=sys.stderr)
                break
        print(text)
    finally:
        try:
            dt.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            browser.wait(timeout=15)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
