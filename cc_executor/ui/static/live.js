// cc_executor dashboard: live updates over server-sent events. The pages are complete
// without this script; it swaps in the HTML fragments the server renders and ticks
// elapsed times. No framework, no network access but this server.
(function () {
  "use strict";

  function duration(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + "s";
    if (seconds < 3600) return (seconds / 60).toFixed(1) + "m";
    return (seconds / 3600).toFixed(1) + "h";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(since)) el.textContent = duration(Math.max(0, (now - since) / 1000));
    });
  }

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  function connect(url) {
    var source = new EventSource(url);
    var live = document.getElementById("live");
    source.onopen = function () { if (live) live.hidden = false; };
    source.onerror = function () { if (live) live.hidden = true; };
    // Replace the inner HTML of the element with the given id.
    source.addEventListener("replace", function (e) {
      var data = JSON.parse(e.data);
      var el = document.getElementById(data.id);
      if (el) { el.replaceChildren(fragment(data.html)); tick(); }
    });
    // Conversation items: replace the one with the same number, or append.
    source.addEventListener("items", function (e) {
      var data = JSON.parse(e.data);
      var box = document.getElementById("conversation");
      if (!box) return;
      data.items.forEach(function (item) {
        var node = fragment(item.html).firstElementChild;
        var old = document.getElementById(node.id);
        if (old) old.replaceWith(node); else box.appendChild(node);
      });
    });
    // The running step's current tool call.
    source.addEventListener("current", function (e) {
      var data = JSON.parse(e.data);
      document.querySelectorAll('[data-current="' + data.n + '"]').forEach(function (el) {
        el.textContent = data.tool ? "▸ " + data.tool : "thinking…";
      });
    });
    // The step ended: the server renders the final page.
    source.addEventListener("reload", function () { source.close(); window.location.reload(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var url = document.body.getAttribute("data-events");
    if (url) connect(url);
    tick();
    setInterval(tick, 1000);
  });
})();
