"""Layout checks for admin pages in headless Chromium: exact viewport, full-page shots, probes."""

from __future__ import annotations

import base64
from pathlib import Path

# The most a full-page screenshot shows: a changelist of 100 rows is taller than anyone looks.
MAX_SHOT_HEIGHT = 6000

# Returns a list of sentences, one per layout fault a person would see on the page as it is:
# the page scrolling sideways, content hidden behind a scroll bar inside the page (a
# changelist's results box; tolerated when ``arguments[0]``, resultsMayScroll, is true), a box
# sticking out of the window, and text squeezed into a column a few characters wide, so that
# its words break. Deliberate truncation (text-overflow: ellipsis) and form controls (a long
# value in an input scrolls inside it) are not faults.
LAYOUT_PROBE = r"""
const resultsMayScroll = arguments[0];
const problems = [];
const root = document.documentElement;
const viewport = root.clientWidth;
const describe = (el) => {
  let name = el.tagName.toLowerCase();
  if (el.id) name += "#" + el.id;
  else if (el.classList.length) name += "." + [...el.classList].join(".");
  const text = (el.innerText || "").trim().replace(/\s+/g, " ").slice(0, 40);
  return text ? `${name} "${text}"` : name;
};
const clips = (st) => st.overflowX !== "visible";
const style = new Map();
const styleOf = (el) => {
  if (!style.has(el)) style.set(el, getComputedStyle(el));
  return style.get(el);
};
// Hidden, or screen-reader-only text (Django's .visually-hidden: a 1px box that clips).
const shownMemo = new Map();
const shown = (el) => {
  if (el === document.body) return true;
  if (!shownMemo.has(el)) {
    const st = styleOf(el);
    const reader = st.clip !== "auto" || (el.clientWidth <= 1 && clips(st));
    shownMemo.set(
      el,
      !reader && shown(el.parentElement) &&
        el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })
    );
  }
  return shownMemo.get(el);
};
// Whether a box between el and the body clips it (its overflow is then that box's fault).
const clippedMemo = new Map();
const clipped = (el) => {
  const up = el.parentElement;
  if (!up || up === document.body) return false;
  if (!clippedMemo.has(up)) clippedMemo.set(up, clips(styleOf(up)) || clipped(up));
  return clippedMemo.get(up);
};
const controls = new Set(["INPUT", "SELECT", "TEXTAREA", "OPTION", "BUTTON"]);
const results = document.querySelector("#changelist-form .results");

if (root.scrollWidth > viewport + 1) {
  problems.push(`the page scrolls sideways: ${root.scrollWidth}px wide in a ${viewport}px window`);
}
for (const el of document.body.querySelectorAll("*")) {
  if (controls.has(el.tagName) || !shown(el)) continue;
  const st = styleOf(el);
  const hidden = el.scrollWidth > el.clientWidth + 1 && st.textOverflow !== "ellipsis";
  if (clips(st) && hidden && !(resultsMayScroll && el === results)) {
    problems.push(
      `${describe(el)} hides ${el.scrollWidth - el.clientWidth}px of its content ` +
        `(${el.clientWidth}px shown of ${el.scrollWidth}px, overflow-x: ${st.overflowX})`
    );
  }
  const box = el.getBoundingClientRect();
  if (box.right > viewport + 1 && st.position !== "fixed" && !clipped(el)) {
    problems.push(
      `${describe(el)} sticks out of the window: ` +
        `right edge at ${Math.round(box.right)}px of ${viewport}px`
    );
  }
}
// A changelist's columns: each one must be in view, not behind the results box's scroll bar.
if (results && !resultsMayScroll) {
  const edge = Math.min(results.getBoundingClientRect().right, viewport);
  for (const th of document.querySelectorAll("#result_list thead th")) {
    const right = th.getBoundingClientRect().right;
    if (right > edge + 1) {
      problems.push(
        `column "${th.innerText.trim()}" is out of view: ` +
          `it ends at ${Math.round(right)}px, the results box at ${Math.round(edge)}px`
      );
    }
  }
}
// Text squeezed into a column a few characters wide: more lines than words, few characters
// a line (a column of single letters, a URL in three-letter pieces), not words that wrap.
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  const chars = node.textContent.replace(/\s+/g, "").length;
  const words = node.textContent.trim().split(/\s+/).length;
  const parent = node.parentElement;
  if (chars < 8 || !parent || controls.has(parent.tagName) || !shown(parent)) continue;
  if (["SCRIPT", "STYLE", "NOSCRIPT"].includes(parent.tagName)) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  const lines = new Set(
    [...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))
  ).size;
  if (lines >= 3 && lines > words && chars / lines < 6) {
    const per = (chars / lines).toFixed(1);
    problems.push(`${describe(parent)} is squeezed to ${per} characters a line (${lines} lines)`);
  }
}
return problems;
"""


def set_viewport(driver, width: int, height: int = 900) -> None:
    """The page's own width and height in CSS pixels, whatever the window's frame takes."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def layout_problems(driver, *, results_may_scroll: bool = False) -> list[str]:
    return driver.execute_script(LAYOUT_PROBE, results_may_scroll)


def save_full_page(driver, path: Path) -> Path:
    """A PNG of the whole page (not only the viewport), up to ``MAX_SHOT_HEIGHT`` pixels."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": size["width"],
        "height": min(size["height"], MAX_SHOT_HEIGHT),
        "scale": 1,
    }
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
