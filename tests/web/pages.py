"""What the browser tests do on the page: fill the form, watch phases and log lines arrive."""
from __future__ import annotations

# Records, in the page, every phase shown and when each log line arrived.
WATCH = """() => {
  window.__phases = [];
  window.__arrivals = [];
  const phase = document.getElementById('m-phase');
  new MutationObserver(() => {
    const p = phase.dataset.phase;
    if (p && window.__phases[window.__phases.length - 1] !== p) window.__phases.push(p);
  }).observe(phase, {attributes: true, attributeFilter: ['data-phase']});
  new MutationObserver((records) => {
    const now = Date.now();
    for (const r of records) for (const n of r.addedNodes)
      if (n.dataset && n.dataset.time) window.__arrivals.push({event: n.dataset.event, time: n.dataset.time, at: now});
  }).observe(document.getElementById('log'), {childList: true});
}"""


def fill_form(page, source: str, target: str, name: str = "") -> None:
    page.click("#new-btn")
    page.wait_for_selector("#configure:not([hidden])")
    if name:
        page.fill("#f-name", name)
    page.fill("#f-source", source)
    page.fill("#f-target", target)
