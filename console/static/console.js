// dojo-webhooks console: the one script. It only refreshes the endpoint list in
// place (every data-refresh-ms, while the tab is visible and "live refresh" is
// checked); every page works without it.
"use strict";
(function () {
  var region = document.getElementById("live-region");
  if (!region || !window.fetch || !window.DOMParser) return;
  var every = parseInt(region.getAttribute("data-refresh-ms"), 10) || 10000;
  var live = region.querySelector(".live");
  var toggle = document.getElementById("live-toggle");
  if (live) live.hidden = false;
  function refresh() {
    if (document.hidden || (toggle && !toggle.checked)) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["rows", "summary-text"].forEach(function (id) {
          var fresh = doc.getElementById(id), old = document.getElementById(id);
          if (fresh && old) old.replaceWith(fresh);
        });
      })
      .catch(function () { /* keep the table as it is; the next tick tries again */ });
  }
  window.setInterval(refresh, every);
})();
